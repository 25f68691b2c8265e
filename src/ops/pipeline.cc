#include "ops/pipeline.h"

#include <fmt/format.h>

#include "util/output.h"

namespace ik::ops {

void append_counts(const std::vector<std::pair<std::string, uint64_t>>& values_by_column, out::Steps& lines) {
    for (const auto& [column, count] : values_by_column) lines.push_back(fmt::format("  {} values in {}", count, column));
}

bool committed_since(Installation& inst, const store::KeyRow& before) {
    try {
        auto row = inst.store().live_key(db_key_name);
        return !row || row->encrypted != before.encrypted;
    } catch (const Error&) {
        return true;
    }
}

StagedKeys::StagedKeys(KeySlots& slots) : slots_(slots) {
    for (const auto& stale : slots_.remove_stale_temp_files())
        out::result("removed the stale temp file {} (a key copy left by a killed run)", stale);
}

void StagedKeys::create(const std::string& slot, const SecretBytes& key) {
    slots_.create(slot, key);
    written_.push_back({slot, std::nullopt});
}

void StagedKeys::replace(const std::string& slot, const SecretBytes& key) {
    auto previous = slots_.read(slot);
    slots_.set(slot, key);
    written_.push_back({slot, std::move(previous)});
}

Error StagedKeys::undo(const Error& cause) {
    if (written_.empty()) return cause;
    std::vector<std::string> undone;
    try {
        while (!written_.empty()) {
            Written& last = written_.back();
            if (last.previous) {
                slots_.set(last.slot, *last.previous);
                undone.push_back("restored " + slots_.describe(last.slot));
            } else {
                slots_.remove(last.slot);
                undone.push_back("removed " + slots_.describe(last.slot));
            }
            written_.pop_back();
        }
    } catch (const Error& e) {
        std::string left;
        for (const auto& w : written_) left += (left.empty() ? "" : ", ") + slots_.describe(w.slot);
        return Error(cause.code(),
                     fmt::format("{}; undoing what was staged failed too ({}); left behind: {}", cause.what(), e.what(),
                                 left),
                     "run `infra-keys rotate-root --abort` once the cause is fixed");
    }
    std::string list;
    for (const auto& u : undone) list += (list.empty() ? "" : ", ") + u;
    return Error(cause.code(), fmt::format("{}; undone: {}; keys and database are as they were", cause.what(), list),
                 cause.hint());
}

}  // namespace ik::ops
