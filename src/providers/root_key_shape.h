// Why a native root key is not 32 bytes, when the cause is a common one, and the command that fixes it.
#pragma once

#include <string>

#include "util/bytes.h"
#include "util/error.h"

namespace ik::providers {

// The error for a root key of the wrong size: its size, and when recognisable the cause (a
// trailing newline, base64 or hex text of a 32-byte key) with the command that fixes it.
// `file_path` is the key file, or "" when the key is not in a file (then the fix is described).
// Never contains a byte of the key.
Error wrong_size_root_key(const SecretBytes& key, const std::string& location, const std::string& file_path);

}  // namespace ik::providers
