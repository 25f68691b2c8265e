#include "cli/outcome.h"

#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "util/docdir.h"
#include "util/output.h"

namespace ik::cli {

ops::Installation open_installation(const GlobalOptions& global) {
    ops::Installation inst = ops::open(global.target);
    for (const auto& w : inst.config.warnings) out::warn("{}", w);
    return inst;
}

void add_json_flag(CLI::App* sub) {
    sub->add_flag("--json")->description("print the outcome as one JSON document on stdout (schema: \"--json\" in " INFRA_KEYS_DOCDIR "/README.md)");
}

nlohmann::json& json_fields() {
    static nlohmann::json fields = nlohmann::json::object();
    return fields;
}

void print_json_outcome(const std::string& command, int exit_code, const Error* error) {
    nlohmann::json j = {{"schema", json_schema_version}, {"command", command}, {"ok", exit_code == 0},
                        {"exit_code", exit_code},       {"steps", out::collected()}, {"warnings", out::warnings()}};
    for (const auto& [name, value] : json_fields().items()) j[name] = value;
    if (error)
        j["error"] = {{"message", error->what()}, {"hint", error->hint()}, {"exit_code", static_cast<int>(error->code())}};
    print_json(j);
}

void print_json(const nlohmann::json& document) {
    std::printf("%s\n", document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

}  // namespace ik::cli
