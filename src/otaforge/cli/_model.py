"""The CLI table's vocabulary: :class:`Opt` (an option or positional), :class:`Cmd` (a
command), and the options several commands share. The table itself is
:data:`otaforge.cli._spec.COMMANDS`.

Data only (no imports): every ``otaforge`` run loads it.
"""

from __future__ import annotations

_KEYWORDS = frozenset({"as", "class", "def", "from", "global", "import", "in", "is", "lambda",
                       "pass", "with", "yield"})


class Opt:
    """One option or positional argument.

    ``flags``: ``("--output", "-o")`` for an option, ``("image",)`` for a positional.
    ``kind``: ``str`` (a value), ``int`` (``lo``/``hi`` inclusive bounds), ``float``, ``flag``
    (``--x``, true when given) or ``bool`` (``--x/--no-x``). ``many``: repeatable, a list.
    ``env``: an environment variable that supplies the default (then not required).
    ``hidden``: accepted and completed, but left out of ``--help`` (e.g. ``--ota-2..15``).
    ``required``: default True for a positional, False for an option.
    """

    __slots__ = (
        "choices",
        "default",
        "env",
        "flags",
        "help",
        "hi",
        "hidden",
        "kind",
        "lo",
        "many",
        "metavar",
        "required",
    )

    def __init__(self, *flags: str, help: str, kind: str = "str",
                 default: object = None, metavar: str | None = None,
                 choices: tuple[str, ...] | None = None, required: bool | None = None,
                 many: bool = False, env: str | None = None, lo: int | float | None = None,
                 hi: int | None = None, hidden: bool = False) -> None:
        self.flags = flags
        self.help = help
        self.kind = kind
        self.default = default
        self.metavar = metavar
        self.choices = choices
        self.required = (not flags[0].startswith("-")) if required is None else required
        self.many = many
        self.env = env
        self.lo = lo
        self.hi = hi
        self.hidden = hidden

    @property
    def positional(self) -> bool:
        """True for a positional argument (its flag has no leading dash)."""
        return not self.flags[0].startswith("-")

    @property
    def dest(self) -> str:
        """The attribute name on the parsed namespace."""
        if self.positional:
            return self.flags[0]
        first = next(f for f in self.flags if f.startswith("--"))
        name = first[2:].replace("-", "_")
        return f"{name}_" if name in _KEYWORDS else name


class Cmd:
    """One command: ``otaforge GROUP NAME`` (``group`` empty: ``otaforge NAME``)."""

    __slots__ = ("description", "group", "handler", "help", "name", "options")

    def __init__(self, group: str, name: str, help: str, handler: str,
                 options: tuple[Opt, ...] = (), description: str = "") -> None:
        self.group = group
        self.name = name
        self.help = help
        self.handler = handler
        self.options = options
        self.description = description

    @property
    def path(self) -> str:
        """``"image info"`` (or ``"demo"`` for a top-level command)."""
        return f"{self.group} {self.name}" if self.group else self.name


# --- options shared by several commands ---------------------------------------------------

JSON = Opt("--json", kind="flag", help="print a JSON report instead of text")
FLASH_SIZE_FIT = Opt("--flash-size", metavar="SIZE",
                     help="flash size (1MB..128MB, or e.g. 0x400000): check the table fits")
TABLE_OFFSET = Opt("--offset", default="0x8000", metavar="ADDR",
                   help="partition table offset (default 0x8000)")
PRIMARY_BOOT = Opt("--primary-bootloader-offset", metavar="ADDR",
                   help="offset of the primary bootloader (for bootloader entries)")
RECOVERY_BOOT = Opt("--recovery-bootloader-offset", metavar="ADDR",
                    help="offset of the recovery bootloader")
SECURE = Opt("--secure", choices=("v1", "v2"),
             help="app partition sizes suitable for Secure Boot v1 or v2")
PT_OFFSET = Opt("--partition-table-offset", default="0x8000", metavar="ADDR",
                help="CONFIG_PARTITION_TABLE_OFFSET (default 0x8000)")
SB_VERSION = Opt("--version", kind="int", default=2, lo=1, hi=2, metavar="{1,2}",
                 help="2: Secure Boot v2 (default); 1: v1 signed apps (ESP32), as espsecure")
KEYFILE = Opt("--keyfile", "--key", "-k", metavar="KEY",
              help="the key file (espsecure's --keyfile; or give KEY as the argument)")
SERVER = Opt("--server", required=True, env="OTAFORGE_SERVER", metavar="URL",
             help="server URL, e.g. https://localhost:8443")
CA = Opt("--ca", env="OTAFORGE_CA", metavar="PEM",
         help="CA certificate to pin (DATA/server_cert.pem)")
ADMIN_TOKEN = Opt("--token", required=True, env="OTAFORGE_TOKEN", metavar="TOKEN",
                  help="admin or user (otfu_) token, or @FILE to read it")
CONNECTION = (SERVER, ADMIN_TOKEN, CA)
FLEET = Opt("--fleet", required=True, metavar="NAME", help="fleet name")
CHIP = Opt("--chip", default="esp32", metavar="CHIP", help="target chip (default esp32)")
ROLLBACK = Opt("--rollback", kind="flag", help="CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE")
ANTI_ROLLBACK = Opt("--anti-rollback", kind="flag", help="CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK")
REVOKE = Opt("--revoke", kind="int", many=True, lo=0, hi=2, metavar="N",
             help="revoked key slot N (SECURE_BOOT_KEY_REVOKEn); repeatable")
CHANNEL_ARG = Opt("channel", help="channel name, e.g. stable")
