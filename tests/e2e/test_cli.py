"""The command line as shipped: every option of --help is in the completions and the man page."""
import os
import re
import subprocess
import unittest

from harness import BIN, ROOT

COMMANDS = ["init", "verify", "status", "rotate-root", "rewrap", "backup", "restore"]


def long_options(*args):
    out = subprocess.run([BIN, *args, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", out)) - {"--help"}


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


class CliTest(unittest.TestCase):
    def test_every_option_is_completed_by_bash_zsh_and_fish(self):
        shells = {"bash": read("completions", "infra-keys.bash"), "zsh": read("completions", "_infra-keys"),
                  "fish": read("completions", "infra-keys.fish")}
        for command in COMMANDS:
            for option in long_options(command):
                for shell, text in shells.items():
                    needle = option if shell != "fish" else f"-l {option[2:]}"
                    with self.subTest(command=command, option=option, shell=shell):
                        self.assertTrue(needle in text, f"{needle} missing from the {shell} completion")
            for shell, text in shells.items():
                self.assertIn(command, text, shell)

    def test_the_man_page_describes_every_command_and_option(self):
        man = read("man", "infra-keys.1").replace("\\-", "-")
        for command in COMMANDS:
            self.assertIn(f"\\fB{command}\\fR", man)
            for option in long_options(command):
                with self.subTest(command=command, option=option):
                    self.assertTrue(option in man, f"{option} missing from man/infra-keys.1")

    def test_no_option_takes_a_secret_on_the_command_line(self):
        for command in COMMANDS:
            for option in long_options(command):
                self.assertNotRegex(option, r"^--(passphrase|password|token|secret|key|root-key)$", command)


if __name__ == "__main__":
    unittest.main()
