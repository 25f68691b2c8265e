// `infra-keys help [COMMAND]`, and "did you mean" for a mistyped command.
#include <algorithm>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "util/error.h"
#include "util/nearest.h"

namespace ik::cli {
namespace {

std::vector<std::string> command_names(const CLI::App& app) {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
    return names;
}

Error unknown_command_error(const CLI::App& app, const std::string& word) {
    auto suggestion = nearest(word, command_names(app));
    return Error(ExitCode::usage,
                 fmt::format("unknown command \"{}\"{}", word,
                             suggestion ? fmt::format(" (did you mean {}?)", *suggestion) : ""),
                 "`infra-keys help` lists the commands");
}

// Global options that take a value, so that the value is not taken for the command.
bool takes_value(const std::string& arg) {
    for (const char* option : {"-c", "--config", "--db-url", "--kubeconfig"})
        if (arg == option) return true;
    return false;
}

}  // namespace

Command add_help(CLI::App& app) {
    auto* sub = app.add_subcommand("help", "Show the commands, or one command's options");
    auto command = std::make_shared<std::string>();
    sub->add_option("COMMAND", *command, "the command to explain");
    return {sub, [&app, command] {
        if (command->empty()) {
            // Not app.help(): that shows the selected subcommand, which is `help` itself.
            std::fputs(app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal).c_str(), stdout);
            return 0;
        }
        for (const CLI::App* other : app.get_subcommands([](const CLI::App*) { return true; }))
            if (other->get_name() == *command) {
                std::fputs(other->help(app.get_name()).c_str(), stdout);
                return 0;
            }
        throw unknown_command_error(app, *command);
    }};
}

std::optional<Error> unknown_command(const CLI::App& app, int argc, char** argv) {
    auto names = command_names(app);
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") return std::nullopt;
        if (takes_value(arg)) {
            ++i;
            continue;
        }
        if (arg.empty() || arg[0] == '-') continue;
        if (std::find(names.begin(), names.end(), arg) != names.end()) return std::nullopt;
        return unknown_command_error(app, arg);
    }
    return std::nullopt;
}

}  // namespace ik::cli
