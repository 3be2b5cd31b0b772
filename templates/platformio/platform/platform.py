# bnn-qemu: the platform class of bnn-mcu's local PlatformIO platform (loaded by `pio run`).
#
# Its one job: fail at once, in one line, when the PlatformIO core dir in use lacks the offline
# pieces. PlatformIO would otherwise fetch tool-scons and the toolchain from its registry,
# which on a machine without access takes about a minute and ends in an empty HTTPClientError.
# PlatformIO calls configure_default_packages() when the platform is loaded for an env, before
# it installs anything the platform or the build needs.

import os

from platformio.exception import UserSideException
from platformio.package.manager.core import get_core_package_dir
from platformio.public import PlatformBase, ProjectConfig

TOOLCHAIN = "toolchain-gccarmnoneeabi"


def core_dir() -> str:
    return ProjectConfig.get_instance().get("platformio", "core_dir")


class BnnqemuPlatform(PlatformBase):
    def configure_default_packages(self, options, targets):
        missing = []
        if get_core_package_dir("tool-scons", auto_install=False) is None:
            missing.append("tool-scons")
        if self.get_package_dir(TOOLCHAIN) is None:
            missing.append(TOOLCHAIN)
        if missing:
            # this platform's folder is CORE/bnn/bnn-qemu of the core dir bnn-mcu prepared
            prepared = os.path.dirname(os.path.dirname(os.path.realpath(self.get_dir())))
            raise UserSideException(
                f"bnn-qemu: the PlatformIO core dir {core_dir()} lacks "
                f"{' and '.join(missing)} (PlatformIO would try its registry): run "
                f"`bnn-mcu pio-setup`, then `export PLATFORMIO_CORE_DIR={prepared}`")
        return super().configure_default_packages(options, targets)
