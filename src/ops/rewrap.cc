#include "ops/rewrap.h"

#include <memory>

#include "ops/db_key.h"
#include "ops/guard.h"
#include "crypto/random.h"
#include "crypto/seal.h"
#include "ops/key_slots.h"
#include "ops/pipeline.h"
#include "ops/rekey.h"
#include "ops/release.h"
#include "providers/native.h"
#include "secrets/kubeconfig.h"
#include "util/error.h"
#include "util/failpoint.h"

namespace ik::ops {
namespace {

struct Candidate {
    std::string name;
    std::unique_ptr<providers::RootKeyProvider> provider;
    std::unique_ptr<Installation> owner;  // keeps --from-config's storages alive
};

std::vector<Candidate> candidates(Installation& inst, const RewrapOptions& options) {
    std::vector<Candidate> out;
    if (options.from_key) out.push_back({"--from-key " + *options.from_key, providers::make_native_file(*options.from_key), {}});
    if (options.from_config) {
        auto other = std::make_unique<Installation>(open(Target{options.from_config, inst.db_url, inst.env("KUBECONFIG"),
                                                                   inst.env(secrets::context_variable),
                                                                   inst.env(secrets::namespace_variable), std::nullopt}));
        std::string name = "--from-config " + *options.from_config + " (" + other->provider->describe() + ")";
        auto provider = std::move(other->provider);
        out.push_back({name, std::move(provider), std::move(other)});
    }
    if (auto slots = key_slots(inst))
        for (const auto& retained : slots->retained())
            out.push_back({"retained key " + slots->describe(retained), slots->provider(retained), {}});
    return out;
}

// Whether `provider` opens the row. During a migration the row may be another provider's
// wrapping, which is "not this key" as much as another key's. Unreachable providers are errors.
std::optional<OpenDbKey> try_open(providers::RootKeyProvider& provider, const store::KeyRow& row) {
    auto key = provider.try_unwrap(row.encrypted);
    if (!key) return std::nullopt;
    return OpenDbKey{row, std::move(*key), seal::key_id_of(row.encrypted)};
}

// The first candidate that opens the row.
std::optional<std::pair<std::string, OpenDbKey>> find_opener(std::vector<Candidate>& list, const store::KeyRow& row) {
    for (auto& candidate : list)
        if (auto key = try_open(*candidate.provider, row)) return std::make_pair(candidate.name, std::move(*key));
    return std::nullopt;
}

bool configured_opens(Installation& inst, const store::KeyRow& row) {
    return inst.provider->root_key_exists() && try_open(*inst.provider, row).has_value();
}

}  // namespace

RewrapResult rewrap(Installation& inst, const RewrapOptions& options) {
    refuse_what_the_release_cannot_run(inst);
    auto slots = key_slots(inst);
    // The server check waits until there is something to change: "nothing to do" is never refused.
    ChangeLock lock = lock_and_check(inst, {/*server_stopped=*/true, false, slots ? 2 * seal::key_size : 0});

    RewrapResult result;
    result.lines.on_line = options.on_step;
    store::KeyRow row = require_db_key_row(inst.store());
    if (configured_opens(inst, row)) {
        result.nothing_to_do = true;
        result.lines.push_back(fmt::format("rewrap: nothing to do: dbkey row {} is already wrapped by {}", row.id,
                                           inst.provider->describe()));
        return result;
    }
    auto list = candidates(inst, options);
    auto found = find_opener(list, row);
    if (!found) {
        // A remote root key we cannot use (KMS: missing or disabled) is the provider's trouble,
        // not a wrong key: say so rather than ask for another key.
        if (!inst.provider->key_storage() && !inst.provider->root_key_exists()) throw root_key_missing(*inst.provider);
        std::string tried = "the configured key";
        for (const auto& c : list) tried += ", " + c.name;
        throw Error(ExitCode::wrong_key, fmt::format("no key opens dbkey row {}; tried {}", row.id, tried),
                    "name the key that wrapped it with --from-key FILE or --from-config OLD.yaml");
    }
    auto& [source, current] = *found;
    result.lines.push_back(fmt::format("dbkey row {} opens with {}", row.id, source));

    // Plan: everything that can refuse, before anything is written.
    require_server_stopped(inst, options.server_stopped);
    KeyChange change = begin_key_change(inst.store(), row);  // before a root key is created
    bool create_root_key = !inst.provider->root_key_exists();
    // A root key the provider creates cannot be taken back: whatever would refuse must refuse before it.
    RekeyPlan plan = plan_rewrite(inst.store(), current, options.dry_run || (create_root_key && !slots));
    std::string verb = options.dry_run ? "would " : "";
    if (options.dry_run) {
        if (create_root_key) result.lines.push_back(fmt::format("would create root key: {}", inst.provider->describe()));
        result.lines.push_back(fmt::format("would re-wrap it under {} in one transaction, re-keying:", inst.provider->describe()));
        append_counts(plan.values_by_column, result.lines);
        return result;
    }

    // Stage: a native root key created here is taken back if the commit does not happen.
    std::optional<StagedKeys> keys;
    if (slots) keys.emplace(*slots);
    try {
        if (create_root_key) {
            if (keys) keys->create(slots->key(), crypto::random_key(seal::key_size));
            else inst.provider->create_root_key();
            result.lines.push_back(fmt::format("created root key: {}", inst.provider->describe()));
            failpoint("rewrap-after-create-root-key");
        }
        NewWrapping next{inst.provider->wrap(current.plaintext), inst.provider->algorithm(), inst.provider->root_key_id()};
        RekeyCounts counts = commit_rewrap(change, inst.store(), current, next,
                                           [&](ByteView w) { return inst.provider->unwrap(w); }, "rewrap");
        result.values = counts.values;
        result.lines.push_back(fmt::format("dbkey row {} re-wrapped under {}; {} encrypted values re-keyed{}", row.id,
                                           inst.provider->describe(), counts.values, counts.values ? ":" : ""));
        append_counts(counts.values_by_column, result.lines);
    } catch (const Error& e) {
        change.tx.reset();
        // Read back, never assume: a row the new key opens has committed, and its key must stay.
        if (keys && !committed_since(inst, row)) throw keys->undo(e);
        throw;
    }
    return result;
}

}  // namespace ik::ops
