#include "ops/guard.h"

#include <algorithm>
#include <filesystem>

#include "util/error.h"
#include "util/files.h"
#include "util/processes.h"

namespace ik::ops {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> files_beside(const std::string& key, const std::string& suffix, const std::string& infix = "") {
    std::vector<std::string> out;
    fs::path path(key);
    std::string prefix = path.filename().string() + ".";
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(path.parent_path(), ec)) {
        std::string name = entry.path().filename().string();
        if (name.size() > prefix.size() + suffix.size() && name.rfind(prefix, 0) == 0 &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
            (infix.empty() || name.find(infix) != std::string::npos))
            out.push_back(entry.path().string());
    }
    return out;
}

}  // namespace

std::vector<std::string> KeyFiles::retained() const {
    auto out = files_beside(key, ".retired");
    std::sort(out.rbegin(), out.rend());  // the stamp sorts by time
    return out;
}

std::string KeyFiles::lock() const {
    std::string dir = fs::path(key).parent_path().string();
    return dir.empty() ? "." : dir;
}

void KeyFiles::remove_stale_temp_files() const {
    for (const auto& temp : files_beside(key, "", ".tmp-")) fs::remove(temp);
}

std::optional<KeyFiles> key_files(const Installation& inst) {
    const auto provider = inst.config.active_provider();
    std::string storage = provider.get("secretprovider", "file");
    if (provider.kind != "native" || storage != "file") return std::nullopt;
    return KeyFiles{inst.config.db_encryption_key};
}

void refuse_if_rotation_interrupted(const Installation& inst) {
    auto files = key_files(inst);
    if (files && files::exists(files->next()))
        throw Error(ExitCode::interrupted,
                    fmt::format("a root key rotation was interrupted: {} holds a new key not yet installed", files->next()),
                    "run `infra-keys rotate-root --resume` to complete it (the Infra server may not start until then)");
}

void require_server_stopped(Installation& inst, bool asserted_stopped) {
    if (asserted_stopped) return;
    std::vector<std::string> users = inst.config.uses_postgres() || inst.db_url
                                         ? inst.store().other_clients()
                                         : processes::with_file_open(inst.config.db_file);
    if (users.empty()) return;
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    throw Error(ExitCode::refused,
                fmt::format("{} is in use by {}; stop the Infra server before changing keys", inst.store().describe(), list),
                "the server caches the wrapped db key and would re-seal values with the old key id (spec §6); "
                "stop it, or pass --server-stopped if these are not Infra servers");
}

}  // namespace ik::ops
