// The server config reader and secret references (config/config.h, secrets/secret_store.h):
// parse, then resolve every reference that names an env or plaintext storage (never files).
#include "config/config.h"
#include "fuzz.h"
#include "secrets/secret_store.h"

using namespace ik;

namespace {

config::Environment fuzz_environment() {
    return [](const std::string& name) -> std::optional<std::string> {
        if (name == "FUZZ_SECRET") return std::string("czNjcjN0");  // base64 of "s3cr3t"
        if (name == "HOME") return std::string("/nonexistent");
        return std::nullopt;
    };
}

void resolve_if_harmless(secrets::SecretStorages& storages, const std::string& reference) {
    size_t colon = reference.find(':');
    std::string name = colon == std::string::npos ? "" : reference.substr(0, colon);
    if (!name.empty() && storages.has(name)) {
        std::string kind = storages.named(name).kind();
        if (kind != "env" && kind != "plaintext") return;  // files and the network stay out of a fuzzer
    }
    storages.resolve(reference);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(fuzz::text_of(data, size));
    fuzz::expect_success_or_refusal([&] {
        config::Config cfg = config::parse(text, "fuzz.yaml", fuzz_environment());
        cfg.active_provider();
        secrets::SecretStorages storages(cfg, fuzz_environment());
        std::vector<std::string> references;
        if (!cfg.db_password.empty()) references.push_back(cfg.db_password);
        for (const auto& entry : cfg.keys)
            for (const char* option : {"token", "accesskeyid", "secretaccesskey"})
                if (auto it = entry.options.find(option); it != entry.options.end()) references.push_back(it->second);
        for (const auto& reference : references) {
            fuzz::expect_success_or_refusal([&] { resolve_if_harmless(storages, reference); });
        }
    });
    return 0;
}
