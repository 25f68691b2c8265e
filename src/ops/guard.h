// Checks every mutating command makes before it writes: no interrupted rotation, server stopped.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/installation.h"

namespace ik::ops {

// The files of a native root key kept in a file: the key, and what rotation keeps beside it.
struct KeyFiles {
    std::string key;  // the configured path (dbEncryptionKey)
    std::string next() const { return key + ".new"; }    // a new key not yet installed
    std::string lock() const;                              // the directory locked while keys change
    std::string retired(const std::string& stamp) const { return key + "." + stamp + ".retired"; }
    std::vector<std::string> retained() const;           // previous keys, newest first
    void remove_stale_temp_files() const;                // left by a write killed half-way
};

// The key files when the provider is native over the file storage; nullopt otherwise.
std::optional<KeyFiles> key_files(const Installation& inst);

// Throws ik::Error(interrupted) with the command to run when a rotation was cut short.
void refuse_if_rotation_interrupted(const Installation& inst);

// Spec §6: the server caches the wrapped db key and re-seals values with it, so keys must not
// change under a running server. Throws ik::Error(refused) naming what uses the database,
// unless the operator asserts with --server-stopped that nothing does.
void require_server_stopped(Installation& inst, bool asserted_stopped);

}  // namespace ik::ops
