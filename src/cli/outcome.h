// One outcome per command run: the text lines and the --json document come from the same steps.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace CLI { class App; }

namespace ik::cli {

// Version of every --json document ("schema" field); raised when a field changes meaning.
constexpr int json_schema_version = 1;

// Adds --json to a subcommand.
void add_json_flag(CLI::App* sub);

// Fields of the JSON outcome that only this command has (e.g. rotate-root's "values").
nlohmann::json& json_fields();

// The JSON outcome of `command` on stdout: schema, command, ok, exit_code, steps (the result
// lines), warnings, the command's own fields and, when it failed, error {message, hint, exit_code}.
void print_json_outcome(const std::string& command, int exit_code, const Error* error);
// Prints one JSON document on stdout. Bytes that are not UTF-8 (a path in another encoding)
// become U+FFFD: the document stays valid JSON, and the text output has the exact bytes.
void print_json(const nlohmann::json& document);

}  // namespace ik::cli
