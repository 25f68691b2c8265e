// A root key's fingerprint: names a key so operators can compare machines and backups, without
// revealing anything about the key bytes.
#pragma once

#include <string>

#include "util/bytes.h"

namespace ik::crypto {

// The first 16 bytes of SHA-256("infra-keys root key fingerprint v1" || key), as 32 lowercase hex
// digits in groups of 8: "3f1a9c02-8b02a1c3-…". The label keeps it from equalling any other hash
// of the key (e.g. a key id computed by another tool).
std::string root_key_fingerprint(const SecretBytes& key);

}  // namespace ik::crypto
