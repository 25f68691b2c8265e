// The sealed-payload parser (crypto/seal.h): parse, format/parse round trip, unseal.
#include "crypto/seal.h"
#include "fuzz.h"

using namespace ik;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text = fuzz::text_of(data, size);
    if (auto payload = seal::parse(text)) {
        auto again = seal::parse(seal::format(*payload));
        fuzz::require(again.has_value(), "a formatted payload parses");
        fuzz::require(again->ciphertext == payload->ciphertext && again->nonce == payload->nonce &&
                          again->key_id == payload->key_id && again->algorithm == payload->algorithm &&
                          again->root_key_id == payload->root_key_id,
                      "parse(format(p)) == p");
    }
    if (auto bytes = seal::decode_base64(text)) {
        auto again = seal::decode_base64(seal::encode_base64(*bytes));
        fuzz::require(again && *again == *bytes, "base64 round trip");
    }
    static const SecretBytes key(32, 0x42);
    try {
        seal::unseal(key, text, seal::key_id_of({}));
    } catch (const seal::UnsealError&) {
        // refused: malformed, wrong key or failed authentication
    }
    return 0;
}
