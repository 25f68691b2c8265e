// JSON and base64 whose memory is scrubbed when freed: for provider requests and answers that
// carry a db key (base64) or a token.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include <botan/base64.h>
#include <nlohmann/json.hpp>

#include "util/bytes.h"

namespace ik {

using SecretJson = nlohmann::basic_json<std::map, std::vector, SecretString, bool, std::int64_t, std::uint64_t,
                                        double, ScrubbingAllocator>;

inline SecretString base64_secret(ByteView bytes) {
    SecretString out(Botan::base64_encode_max_output(bytes.size()), '\0');
    size_t consumed = 0;
    out.resize(Botan::base64_encode(out.data(), bytes.data(), bytes.size(), consumed, true));
    return out;
}

// Throws std::invalid_argument (Botan's) when `text` is not base64.
inline SecretBytes base64_decode_secret(std::string_view text) {
    return Botan::base64_decode(text.data(), text.size());
}

}  // namespace ik
