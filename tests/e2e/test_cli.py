"""The command line as shipped: every option of --help is in the completions and the man page."""
import os
import re
import subprocess
import unittest

from harness import BIN, ROOT

COMMANDS = ["init", "verify", "status", "rotate-root", "rotate-data-key", "rewrap", "backup", "restore", "help"]


def long_options(*args):
    out = subprocess.run([BIN, *args, "--help"], capture_output=True, text=True, check=True).stdout
    out = out.split("Subcommands:")[0]  # the top level's list of commands names their options too
    # Options as CLI11 lists them, one per line ("  -o,--output TEXT"), not ones named in a description.
    return set(re.findall(r"^\s+(?:-\w,)?(--[a-z][a-z-]+)", out, re.MULTILINE)) - {"--help"}


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


class CliTest(unittest.TestCase):
    def test_every_option_is_completed_by_bash_zsh_and_fish(self):
        shells = {"bash": read("completions", "infra-keys.bash"), "zsh": read("completions", "_infra-keys"),
                  "fish": read("completions", "infra-keys.fish")}
        for command in COMMANDS + [None]:
            for option in long_options(*([command] if command else [])):
                for shell, text in shells.items():
                    needle = option if shell != "fish" else f"-l {option[2:]}"
                    with self.subTest(command=command, option=option, shell=shell):
                        self.assertTrue(needle in text, f"{needle} missing from the {shell} completion")
            for shell, text in shells.items():
                self.assertIn(command or "", text, shell)

    def test_the_man_page_describes_every_command_and_option(self):
        man = read("man", "infra-keys.1.in").replace("\\-", "-")
        for command in COMMANDS + [None]:
            if command:
                self.assertIn(f"\\fB{command}\\fR", man)
            for option in long_options(*([command] if command else [])):
                with self.subTest(command=command, option=option):
                    self.assertTrue(option in man, f"{option} missing from man/infra-keys.1.in")

    def test_the_man_page_synopsis_lists_every_option_of_every_command(self):
        man = read("man", "infra-keys.1.in").replace("\\-", "-")
        synopsis = man[man.index(".SH SYNOPSIS"):man.index(".SH DESCRIPTION")]
        blocks, shared = synopsis.split(".PP")[0].split(".br"), synopsis.split(".PP")[1]  # shared: PASSPHRASE
        for command in COMMANDS + [None]:
            heads = [(b, b.strip().splitlines()[0]) for b in blocks]
            lines = [b for b, head in heads if command and (head == f".B infra-keys {command}" or
                                                            head.startswith(f".B infra-keys {command} "))]
            text = "".join(lines) if command else blocks[0] + blocks[-1]  # and `infra-keys --version | --help`
            if command:
                self.assertTrue(lines, f"no synopsis for {command}")
            for option in long_options(*([command] if command else [])):
                with self.subTest(command=command, option=option):
                    self.assertTrue(option in text or ("[\\fIPASSPHRASE\\fR]" in text and option in shared),
                                    f"{option} missing from the synopsis of {command}")

    def test_no_option_takes_a_secret_on_the_command_line(self):
        for command in COMMANDS:
            for option in long_options(command):
                self.assertNotRegex(option, r"^--(passphrase|password|token|secret|key|root-key)$", command)


if __name__ == "__main__":
    unittest.main()
