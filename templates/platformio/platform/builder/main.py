# bnn-qemu: the builder of bnn-mcu's local PlatformIO platform (SCons script, run by `pio run`).
#
# Build: arm-none-eabi-gcc (the toolchain package bnn-mcu pio-setup links to Debian's
# /usr/bin/arm-none-eabi-*); the board's core flags, start-up code and linker script come from
# the "bnn-ports" framework (builder/frameworks/bnn_ports.py).
# Upload: runs the firmware in qemu-system-arm with the board's UART on a TCP server that waits
# for the host, and returns QEMU's exit code (the firmware's, through semihosting).
#   upload_port (platformio.ini or --upload-port): [HOST:]PORT of that server (default 4444)
#   BNN_QEMU_PORT          overrides upload_port (the port only)
#   BNN_QEMU_SERIAL_LOG    also copy the UART output to this file
#   BNN_QEMU_ARGS          more QEMU arguments (shell words), e.g. -device loader,...

import os
import shlex
import subprocess
import sys

from SCons.Script import COMMAND_LINE_TARGETS, AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()

env.Replace(
    AR="arm-none-eabi-ar",
    AS="arm-none-eabi-as",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="arm-none-eabi-gdb",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-ranlib",
    SIZETOOL="arm-none-eabi-size",
    ARFLAGS=["rc"],
    SIZEPROGREGEXP=r"^(?:\.text|\.data|\.ARM\.exidx)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
)

if "nobuild" in COMMAND_LINE_TARGETS:
    target_elf = env.File(os.path.join("$BUILD_DIR", "${PROGNAME}.elf"))
else:
    target_elf = env.BuildProgram()


def _serial_server(env):
    """(host, port) of the TCP server QEMU puts the board's UART on."""
    text = os.environ.get("BNN_QEMU_PORT") or env.subst("$UPLOAD_PORT") or "4444"
    host, _, port = text.strip().rpartition(":")
    if not port.isdigit():
        sys.stderr.write("Error: upload_port must be [HOST:]PORT, the TCP port for the "
                         "board's UART (got %r)\n" % text)
        env.Exit(1)
    return host or "127.0.0.1", int(port)


def qemu_command(env, elf):
    host, port = _serial_server(env)
    chardev = "socket,id=bnnuart,host=%s,port=%d,server=on,wait=on,nodelay=on" % (host, port)
    log = os.environ.get("BNN_QEMU_SERIAL_LOG")
    if log:
        chardev += ",logfile=%s,logappend=off" % log
    cmd = ["qemu-system-arm", "-M", board.get("upload.qemu_machine"), "-kernel", elf,
           "-display", "none", "-monitor", "none", "-nodefaults",
           "-chardev", chardev, "-serial", "chardev:bnnuart",
           "-semihosting-config", "enable=on,target=native"]
    cmd += list(board.get("upload.qemu_args", []))
    cmd += shlex.split(os.environ.get("BNN_QEMU_ARGS", ""))
    return cmd, host, port


def run_in_qemu(target, source, env):
    cmd, host, port = qemu_command(env, source[0].get_abspath())
    print("QEMU %s: the board's UART is on tcp %s:%d; QEMU waits for the host, e.g.\n"
          "  bnn-mcu verify MODEL --target serial:socket://%s:%d --data DATA\n"
          "(the firmware exits, and QEMU with it, on the protocol's EXIT; else stop it with "
          "Ctrl-C)" % (board.get("upload.qemu_machine"), host, port, host, port))
    sys.stdout.flush()
    try:
        code = subprocess.call(cmd)
    except OSError as e:
        sys.stderr.write("Error: cannot run qemu-system-arm (%s): "
                         "apt-get install qemu-system-arm\n" % e)
        return 1
    if code != 0:
        sys.stderr.write("QEMU exited with code %d\n" % code)
    return code


upload = env.Alias("upload", target_elf, env.VerboseAction(run_in_qemu, "Running in QEMU"))
AlwaysBuild(upload)
Default([target_elf])
