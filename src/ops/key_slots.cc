#include "ops/key_slots.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "util/error.h"
#include "util/files.h"


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

std::vector<std::string> KeySlots::stale_temp_names() {
    std::vector<std::string> out;
    for (auto& name : storage_.names_with_prefix(key_ + "."))
        if (name.find(".tmp-") != std::string::npos) out.push_back(std::move(name));
    return out;
}

std::vector<std::string> KeySlots::stale_temp_files_beside_link_target() {
    auto file = storage_.file_of(key_);
    auto target = file ? files::symlink_target(*file) : std::nullopt;
    return target ? files::stale_temp_files_of(*target) : std::vector<std::string>{};
}

std::vector<std::string> KeySlots::stale_temp_files() {
    std::vector<std::string> out;
    for (const auto& name : stale_temp_names()) out.push_back(describe(name));
    for (const auto& path : stale_temp_files_beside_link_target()) out.push_back("file " + path);
    return out;
}

std::vector<std::string> KeySlots::remove_stale_temp_files() {
    std::vector<std::string> removed;
    for (const auto& name : stale_temp_names()) {
        storage_.remove(name);
        removed.push_back(describe(name));
    }
    for (const auto& path : stale_temp_files_beside_link_target())
        if (std::remove(path.c_str()) == 0) removed.push_back("file " + path);
    return removed;
}

std::optional<std::string> KeySlots::lock_directory() const {
    auto file = storage_.file_of(key_);
    if (!file) return std::nullopt;
    std::string dir = std::filesystem::path(*file).parent_path().string();
    return dir.empty() ? "." : dir;
}

std::optional<KeySlots> key_slots(Installation& inst) {
    secrets::SecretStorage* storage = inst.provider->key_storage();
    if (!storage) return std::nullopt;
    return KeySlots(*storage, inst.provider->root_key_id());
}

std::vector<std::string> stale_temp_files(const Target& target) {
    std::vector<std::string> out;
    try {
        Installation inst = open(target);
        if (auto slots = key_slots(inst))
            out = slots->stale_temp_files();
    } catch (const Error&) {
        // status reports why the installation does not open through its other checks
    }
    return out;
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
