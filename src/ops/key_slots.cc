#include "ops/key_slots.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "secrets/builtin.h"

namespace ik::ops {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<std::string> KeySlots::retained() {
    std::vector<std::string> out;
    for (auto& name : storage_.names_with_prefix(key_ + "."))
        if (ends_with(name, ".retired") && name.size() > key_.size() + 9) out.push_back(std::move(name));
    std::sort(out.rbegin(), out.rend());
    return out;
}

void KeySlots::remove_stale_temp_files() {
    for (const auto& name : storage_.names_with_prefix(key_ + "."))
        if (name.find(".tmp-") != std::string::npos) storage_.remove(name);
}

std::optional<std::string> KeySlots::lock_directory() const {
    auto* file = dynamic_cast<secrets::FileStorage*>(&storage_);
    if (!file) return std::nullopt;
    std::string dir = std::filesystem::path(file->path_of(key_)).parent_path().string();
    return dir.empty() ? "." : dir;
}

std::optional<KeySlots> key_slots(Installation& inst) {
    const auto provider = inst.config.active_provider();
    if (provider.kind != "native") return std::nullopt;
    auto* native = dynamic_cast<providers::NativeProvider*>(inst.provider.get());
    if (!native) return std::nullopt;
    return KeySlots(inst.secrets->named(provider.get("secretprovider", "file")), native->root_key_id());
}

std::string utc_stamp() {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
    return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec, micros);
}

}  // namespace ik::ops
