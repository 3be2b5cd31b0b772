# The "bnn-ports" framework of the bnn-qemu platform: bnn-mcu's bare-metal port for the board
# (firmware/ports/: vector table and reset, fault report, semihosting exit, the board's UART and
# counter drivers, linker script), exactly what firmware/Makefile builds for the same board.
# Core flags, drivers and stack size are read from firmware/ports/<board>/board.mk, generated
# from bnn_mcu/targets/boards.py. `bnn-mcu pio-setup` links firmware/ into the platform folder.
#   board_build.bnn_emulated_memory = yes   link for QEMU's enlarged memories (micro:bit)
#   board_build.bnn_stack_size = BYTES      another stack size

import os
import subprocess
import sys

from SCons.Script import Import

Import("env")

board = env.BoardConfig()
FW = os.path.join(env.PioPlatform().get_dir(), "firmware")
PORT = board.get("build.bnn_port")
PORT_DIR = os.path.join(FW, "ports", PORT)
if not os.path.isfile(os.path.join(PORT_DIR, "board.mk")):
    sys.stderr.write("Error: %s not found: the bnn-qemu platform is not set up; "
                     "run `bnn-mcu pio-setup`\n" % os.path.join(PORT_DIR, "board.mk"))
    env.Exit(1)


def read_board_mk(path):
    values = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.partition(":=")
            if sep and not line.startswith("#"):
                values[key.strip()] = value.split()
    return values


mk = read_board_mk(os.path.join(PORT_DIR, "board.mk"))
core_flags = mk["BOARD_CFLAGS"]
stack = int(board.get("build.bnn_stack_size", mk["BOARD_STACK_SIZE"][0]))
emulated = str(board.get("build.bnn_emulated_memory", "no")).lower() in ("1", "yes", "true")
mem_defs = ["-DBNN_EMULATED_MEMORY"] if emulated else []

env.Append(
    ASFLAGS=core_flags,
    CCFLAGS=core_flags + ["-ffunction-sections", "-fdata-sections", "-g"],
    CFLAGS=["-std=c99"],
    LINKFLAGS=core_flags + ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                            "-Wl,--gc-sections",
                            "-Wl,-Map=" + os.path.join(env.subst("$BUILD_DIR"), "firmware.map")],
)

# The linker script: link.ld.in through the C preprocessor with the board's memory map.
ldscript = os.path.join(env.subst("$BUILD_DIR"), "link.ld")
cmd = [env.subst("$CC"), "-E", "-P", "-x", "c", *mem_defs, "-DBNN_STACK_SIZE=%d" % stack,
       "-include", os.path.join(PORT_DIR, "board.h"),
       os.path.join(FW, "ports", "common", "cortexm", "link.ld.in")]
res = subprocess.run(cmd, capture_output=True, text=True)
if res.returncode != 0:
    sys.stderr.write("Error: cannot make the linker script:\n%s\n" % res.stderr)
    env.Exit(1)
old = open(ldscript).read() if os.path.isfile(ldscript) else None
if old != res.stdout:
    with open(ldscript, "w") as f:
        f.write(res.stdout)
env.Replace(LDSCRIPT_PATH=ldscript)

# The port's sources, with their own include paths (the project does not see board.h).
port_env = env.Clone()
port_env.Append(CPPPATH=[os.path.join(FW, "include"), PORT_DIR,
                         os.path.join(FW, "ports", "common"),
                         os.path.join(FW, "ports", "common", "cortexm")],
                CPPDEFINES=[d[2:] for d in mem_defs])
sources = ["common/*.c", "common/cortexm/startup.c", "common/cortexm/port_cortexm.c",
           *("common/" + s for s in mk.get("BOARD_COMMON_SRCS", [])), PORT + "/*.c"]
port_env.BuildSources(os.path.join("$BUILD_DIR", "bnn_port"), os.path.join(FW, "ports"),
                      " ".join(["-<*>"] + ["+<%s>" % s for s in sources]))
