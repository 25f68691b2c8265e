// The Infra sealed-payload format (docs/infra-format.md §5): the only place that knows its layout.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/bytes.h"

namespace Botan { class AEAD_Mode; }

namespace ik::seal {

constexpr size_t key_size = 32;
constexpr size_t nonce_size = 12;
constexpr size_t tag_size = 16;
constexpr std::string_view algorithm = "aesgcm";

// First 4 bytes of SHA-256 of a sealing key's *wrapped* form (the stored `encrypted` bytes of
// the db key row; empty for a native root key, giving e3b0c442).
using KeyId = std::array<uint8_t, 4>;
KeyId key_id_of(ByteView wrapped_key);
std::string to_hex(const KeyId& id);

// The decoded binary layout. Parsing never reads out of bounds; any inconsistency is malformed.
struct Payload {
    Bytes ciphertext;  // includes the 16-byte GCM tag
    std::string algorithm;
    Bytes key_id;
    std::string root_key_id;
    Bytes nonce;
};

enum class Failure { none, malformed, wrong_key, authentication };
std::string_view describe(Failure f);  // "malformed", "wrong key", "authentication failed"

// Thrown by the convenience functions below; `failure` says which check refused it.
struct UnsealError : std::runtime_error {
    UnsealError(Failure f, const std::string& what) : std::runtime_error(what), failure(f) {}
    Failure failure;
};

// Unpadded standard base64 as Go's RawStdEncoding reads and writes it.
std::string encode_base64(ByteView bytes);
std::optional<Bytes> decode_base64(std::string_view text);

std::optional<Payload> parse(std::string_view text);
// A cheap test that rules out most plaintext without decoding: a sealed payload is at least
// minimal_payload_text characters of the base64 alphabet. True does not mean it parses.
constexpr size_t minimal_payload_text = 32;  // 4 + 16 (tag) + 4 length bytes, in base64
bool may_be_payload(std::string_view text);
std::string format(const Payload& payload);

// Seals `plaintext` under `key` (exactly 32 bytes, else throws std::invalid_argument).
// `nonce` is for test vectors only; production always draws a fresh random one.
std::string seal(const SecretBytes& key, ByteView plaintext, const KeyId& key_id,
                 std::string_view root_key_id, const std::optional<Bytes>& nonce = std::nullopt);

// Checks the key id, then the tag. Throws UnsealError.
SecretBytes unseal(const SecretBytes& key, std::string_view text, const KeyId& expected_key_id);

// Rewrites only the 4-byte key id header field (outside GCM authentication), keeping every
// other byte, as docs/infra-format.md §6 requires when the db key is re-wrapped. Throws UnsealError(malformed).
std::string with_key_id(std::string_view text, const KeyId& new_key_id);

// Moves many values from one key id to another (docs/infra-format.md §6), for a re-key's rewrite:
// one decode per value and no re-encoding, since the field keeps its 4 bytes and only the base64
// characters over them change. The result is exactly with_key_id's. Not thread-safe; one per worker.
class KeyIdRewriter {
public:
    KeyIdRewriter(const KeyId& from, const KeyId& to) : from_(from), to_(to) {}
    // `text` carrying `to` instead of `from`, or nullopt when it is not a payload carrying `from`.
    std::optional<std::string> rewrite(std::string_view text);

private:
    KeyId from_, to_;
    Bytes decoded_;
};

// A reusable sealer for sealing many values under one key (rotate-data-key): the cipher keyed
// once and the payload's fixed fields kept, so each value costs a nonce, GCM and base64. seal()
// is this for one value. Not thread-safe; one per worker.
class Sealer {
public:
    // Throws std::invalid_argument for a key that is not 32 bytes or a root key id over 255 bytes.
    Sealer(const SecretBytes& key, const KeyId& key_id, std::string_view root_key_id);
    ~Sealer();
    Sealer(Sealer&&) noexcept;
    std::string seal(ByteView plaintext, const std::optional<Bytes>& nonce = std::nullopt);

private:
    std::unique_ptr<Botan::AEAD_Mode> cipher_;
    Payload payload_;     // algorithm, key id and root key id fixed; nonce and ciphertext per value
    SecretBytes buffer_;  // plaintext until finish() turns it into ciphertext
};

// A reusable opener for scanning many values under one key: holds the cipher object and
// scratch buffers so the hot loop does not allocate. Not thread-safe; one per worker.
class Opener {
public:
    Opener(const SecretBytes& key, const KeyId& expected_key_id);
    ~Opener();
    Opener(Opener&&) noexcept;
    // Returns Failure::none and leaves the plaintext in `plaintext()` on success.
    Failure open(std::string_view text);
    const SecretBytes& plaintext() const { return plaintext_; }
    // The key id the last opened value carries (empty when it was malformed).
    const Bytes& found_key_id() const { return found_key_id_; }

private:
    std::unique_ptr<Botan::AEAD_Mode> cipher_;
    KeyId expected_;
    Bytes decoded_;
    Bytes found_key_id_;
    SecretBytes plaintext_;
};

}  // namespace ik::seal
