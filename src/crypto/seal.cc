#include "crypto/seal.h"

#include <algorithm>
#include <stdexcept>

#include <botan/aead.h>
#include <botan/exceptn.h>
#include <botan/hash.h>
#include <botan/hex.h>
#include <fmt/format.h>

#include "crypto/random.h"

namespace ik::seal {
namespace {

constexpr std::string_view cipher_name = "AES-256/GCM";
constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Sextet value of a base64 character, or -1. '=' is not in the raw alphabet, so padding is an error.
constexpr std::array<int8_t, 256> make_sextet_table() {
    std::array<int8_t, 256> table{};
    table.fill(-1);
    for (size_t i = 0; i < base64_alphabet.size(); ++i)
        table[static_cast<uint8_t>(base64_alphabet[i])] = static_cast<int8_t>(i);
    return table;
}
constexpr auto sextet_table = make_sextet_table();

// Decodes like Go's base64.RawStdEncoding: '\r' and '\n' are skipped anywhere, '=' and any other
// character outside the alphabet is an error, a dangling single character is an error, and (as Go's
// non-strict decoder) unused low bits of the last character are ignored. Reuses `out`'s capacity.
// Every value a census or a rewrite reads passes through here, several times per key change.
bool decode_base64_into(std::string_view text, Bytes& out) {
    out.resize(text.size() / 4 * 3 + 3);
    const auto* in = reinterpret_cast<const uint8_t*>(text.data());
    uint8_t* to = out.data();
    size_t at = 0, written = 0;
    // Whole groups of four alphabet characters, as stored values are made of, without a branch per
    // character. Anything else (a line break, a stray character) stops it on a group boundary and
    // the loop below, one character at a time, carries on from there.
    for (; at + 4 <= text.size(); at += 4) {
        int32_t a = sextet_table[in[at]], b = sextet_table[in[at + 1]], c = sextet_table[in[at + 2]],
                d = sextet_table[in[at + 3]];
        if ((a | b | c | d) < 0) break;
        uint32_t group = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6) | uint32_t(d);
        to[written] = static_cast<uint8_t>(group >> 16);
        to[written + 1] = static_cast<uint8_t>(group >> 8);
        to[written + 2] = static_cast<uint8_t>(group);
        written += 3;
    }
    uint32_t group = 0;
    size_t sextets = 0;
    for (char c : text.substr(at)) {
        if (c == '\r' || c == '\n') continue;
        int8_t value = sextet_table[static_cast<uint8_t>(c)];
        if (value < 0) return false;
        group = (group << 6) | static_cast<uint32_t>(value);
        if (++sextets == 4) {
            to[written++] = static_cast<uint8_t>(group >> 16);
            to[written++] = static_cast<uint8_t>(group >> 8);
            to[written++] = static_cast<uint8_t>(group);
            group = 0;
            sextets = 0;
        }
    }
    switch (sextets) {
    case 0: break;
    case 1: return false;
    case 2: to[written++] = static_cast<uint8_t>(group >> 4); break;
    case 3:
        to[written++] = static_cast<uint8_t>(group >> 10);
        to[written++] = static_cast<uint8_t>(group >> 2);
        break;
    }
    out.resize(written);
    return true;
}

// Non-owning view of the binary layout, pointing into the decoded buffer (no copies on the hot path).
struct PayloadView {
    ByteView ciphertext;
    ByteView algorithm;
    size_t key_id_length_offset = 0;  // where the key id's length byte sits, for with_key_id
    ByteView key_id;
    ByteView root_key_id;
    ByteView nonce;
};

// Reads fields front to back; every length is checked against what remains before it is used.
class Reader {
public:
    explicit Reader(ByteView data) : data_(data) {}
    size_t offset() const { return offset_; }
    bool at_end() const { return offset_ == data_.size(); }

    bool read_u32(uint32_t& value) {
        if (data_.size() - offset_ < 4) return false;
        value = (uint32_t{data_[offset_]} << 24) | (uint32_t{data_[offset_ + 1]} << 16) |
                (uint32_t{data_[offset_ + 2]} << 8) | uint32_t{data_[offset_ + 3]};
        offset_ += 4;
        return true;
    }
    bool read_bytes(size_t size, ByteView& out) {
        if (data_.size() - offset_ < size) return false;
        out = data_.subspan(offset_, size);
        offset_ += size;
        return true;
    }
    bool read_short_field(ByteView& out) {
        if (at_end()) return false;
        size_t size = data_[offset_++];
        return read_bytes(size, out);
    }

private:
    ByteView data_;
    size_t offset_ = 0;
};

std::optional<PayloadView> parse_binary(ByteView data) {
    PayloadView view;
    Reader reader(data);
    uint32_t ciphertext_size = 0;
    if (!reader.read_u32(ciphertext_size) || !reader.read_bytes(ciphertext_size, view.ciphertext))
        return std::nullopt;
    if (!reader.read_short_field(view.algorithm)) return std::nullopt;
    view.key_id_length_offset = reader.offset();
    if (!reader.read_short_field(view.key_id) || !reader.read_short_field(view.root_key_id) ||
        !reader.read_short_field(view.nonce))
        return std::nullopt;
    // A ciphertext shorter than its tag, a nonce GCM cannot use, or bytes after the nonce cannot come
    // from a sealer: the value is damaged, not merely sealed under another key.
    if (view.ciphertext.size() < tag_size || view.nonce.size() != nonce_size || !reader.at_end())
        return std::nullopt;
    return view;
}

bool key_id_matches(ByteView found, const KeyId& expected) {
    return std::equal(found.begin(), found.end(), expected.begin(), expected.end());
}

void append_u32(Bytes& out, uint32_t value) {
    out.push_back(static_cast<uint8_t>(value >> 24));
    out.push_back(static_cast<uint8_t>(value >> 16));
    out.push_back(static_cast<uint8_t>(value >> 8));
    out.push_back(static_cast<uint8_t>(value));
}

void append_short_field(Bytes& out, ByteView field, std::string_view name) {
    if (field.size() > 255)
        throw std::invalid_argument(fmt::format("sealed payload {} is {} bytes; the format allows at most 255",
                                                name, field.size()));
    out.push_back(static_cast<uint8_t>(field.size()));
    out.insert(out.end(), field.begin(), field.end());
}

std::string to_hex(ByteView bytes) { return Botan::hex_encode(bytes.data(), bytes.size(), false); }

void require_key_size(size_t size) {
    if (size != key_size)
        throw std::invalid_argument(fmt::format("key is {} bytes; sealing needs exactly {}", size, key_size));
}

UnsealError unseal_error(Failure failure, std::string_view text, const KeyId& expected) {
    if (failure == Failure::wrong_key) {
        auto payload = parse(text);
        std::string found = payload ? to_hex(payload->key_id) : std::string("?");
        return UnsealError(failure, fmt::format("wrong key: value is sealed under key id {}, expected {}",
                                                found, to_hex(expected)));
    }
    return UnsealError(failure, fmt::format("cannot unseal value: {}", describe(failure)));
}

}  // namespace

KeyId key_id_of(ByteView wrapped_key) {
    auto sha256 = Botan::HashFunction::create_or_throw("SHA-256");
    sha256->update(wrapped_key.data(), wrapped_key.size());
    auto digest = sha256->final();
    KeyId id;
    std::copy_n(digest.begin(), id.size(), id.begin());
    return id;
}

std::string to_hex(const KeyId& id) { return to_hex(ByteView(id)); }

std::string_view describe(Failure f) {
    switch (f) {
    case Failure::none: return "ok";
    case Failure::malformed: return "malformed";
    case Failure::wrong_key: return "wrong key";
    case Failure::authentication: return "authentication failed";
    }
    return "unknown";
}

std::string encode_base64(ByteView bytes) {
    std::string out;
    out.reserve((bytes.size() * 4 + 2) / 3);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t group = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
        out.push_back(base64_alphabet[(group >> 18) & 63]);
        out.push_back(base64_alphabet[(group >> 12) & 63]);
        out.push_back(base64_alphabet[(group >> 6) & 63]);
        out.push_back(base64_alphabet[group & 63]);
    }
    size_t rest = bytes.size() - i;
    if (rest == 1) {
        uint32_t group = uint32_t{bytes[i]} << 16;
        out.push_back(base64_alphabet[(group >> 18) & 63]);
        out.push_back(base64_alphabet[(group >> 12) & 63]);
    } else if (rest == 2) {
        uint32_t group = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8);
        out.push_back(base64_alphabet[(group >> 18) & 63]);
        out.push_back(base64_alphabet[(group >> 12) & 63]);
        out.push_back(base64_alphabet[(group >> 6) & 63]);
    }
    return out;
}

std::optional<Bytes> decode_base64(std::string_view text) {
    Bytes out;
    if (!decode_base64_into(text, out)) return std::nullopt;
    return out;
}

bool may_be_payload(std::string_view text) {
    if (text.size() < minimal_payload_text) return false;
    return std::all_of(text.begin(), text.end(), [](char c) { return sextet_table[static_cast<uint8_t>(c)] >= 0; });
}

std::optional<Payload> parse(std::string_view text) {
    auto binary = decode_base64(text);
    if (!binary) return std::nullopt;
    auto view = parse_binary(*binary);
    if (!view) return std::nullopt;
    return Payload{
        Bytes(view->ciphertext.begin(), view->ciphertext.end()),
        std::string(as_text(view->algorithm)),
        Bytes(view->key_id.begin(), view->key_id.end()),
        std::string(as_text(view->root_key_id)),
        Bytes(view->nonce.begin(), view->nonce.end()),
    };
}

std::string format(const Payload& payload) {
    if (payload.ciphertext.size() > UINT32_MAX)
        throw std::invalid_argument("sealed payload ciphertext does not fit a 32-bit length");
    Bytes out;
    out.reserve(4 + payload.ciphertext.size() + 4 + payload.algorithm.size() + payload.key_id.size() +
                payload.root_key_id.size() + payload.nonce.size());
    append_u32(out, static_cast<uint32_t>(payload.ciphertext.size()));
    out.insert(out.end(), payload.ciphertext.begin(), payload.ciphertext.end());
    append_short_field(out, as_bytes(payload.algorithm), "algorithm");
    append_short_field(out, payload.key_id, "key id");
    append_short_field(out, as_bytes(payload.root_key_id), "root key id");
    append_short_field(out, payload.nonce, "nonce");
    return encode_base64(out);
}

std::string seal(const SecretBytes& key, ByteView plaintext, const KeyId& key_id,
                 std::string_view root_key_id, const std::optional<Bytes>& nonce) {
    return Sealer(key, key_id, root_key_id).seal(plaintext, nonce);
}

Sealer::Sealer(const SecretBytes& key, const KeyId& key_id, std::string_view root_key_id)
    : cipher_(Botan::AEAD_Mode::create_or_throw(std::string(cipher_name), Botan::ENCRYPTION)) {
    require_key_size(key.size());
    if (root_key_id.size() > 255)
        throw std::invalid_argument(fmt::format("root key id is {} bytes; the sealed format allows at most 255",
                                                root_key_id.size()));
    cipher_->set_key(key);
    payload_.algorithm = std::string(algorithm);
    payload_.key_id.assign(key_id.begin(), key_id.end());
    payload_.root_key_id = std::string(root_key_id);
}

Sealer::~Sealer() = default;
Sealer::Sealer(Sealer&&) noexcept = default;

std::string Sealer::seal(ByteView plaintext, const std::optional<Bytes>& nonce) {
    if (nonce && nonce->size() != nonce_size)
        throw std::invalid_argument(fmt::format("nonce is {} bytes; GCM here needs {}", nonce->size(), nonce_size));
    payload_.nonce = nonce ? *nonce : crypto::random_bytes(nonce_size);
    cipher_->start(payload_.nonce);
    buffer_.assign(plaintext.begin(), plaintext.end());
    cipher_->finish(buffer_);
    payload_.ciphertext.assign(buffer_.begin(), buffer_.end());
    return format(payload_);
}

SecretBytes unseal(const SecretBytes& key, std::string_view text, const KeyId& expected_key_id) {
    Opener opener(key, expected_key_id);
    Failure failure = opener.open(text);
    if (failure != Failure::none) throw unseal_error(failure, text, expected_key_id);
    return opener.plaintext();
}

std::string with_key_id(std::string_view text, const KeyId& new_key_id) {
    auto binary = decode_base64(text);
    std::optional<PayloadView> view;
    if (binary) view = parse_binary(*binary);
    if (!view) throw UnsealError(Failure::malformed, "cannot rewrite key id: sealed value is malformed");

    // Splice: everything before the key id field, the new field, everything after the old field.
    size_t old_field_end = view->key_id_length_offset + 1 + view->key_id.size();
    Bytes out;
    out.reserve(binary->size() - view->key_id.size() + new_key_id.size());
    out.insert(out.end(), binary->begin(), binary->begin() + static_cast<ptrdiff_t>(view->key_id_length_offset));
    append_short_field(out, new_key_id, "key id");
    out.insert(out.end(), binary->begin() + static_cast<ptrdiff_t>(old_field_end), binary->end());
    return encode_base64(out);
}

std::optional<std::string> KeyIdRewriter::rewrite(std::string_view text) {
    if (!decode_base64_into(text, decoded_)) return std::nullopt;
    auto view = parse_binary(decoded_);
    if (!view || !key_id_matches(view->key_id, from_)) return std::nullopt;
    size_t at = view->key_id_length_offset + 1;  // the field's first byte; its length byte stays 4
    std::copy(to_.begin(), to_.end(), decoded_.begin() + static_cast<ptrdiff_t>(at));
    // Line breaks (which the decoder skips) shift the characters: encode it all, as with_key_id.
    if (text.find('\n') != std::string_view::npos || text.find('\r') != std::string_view::npos)
        return encode_base64(decoded_);
    // Each 3 bytes are 4 characters; the groups over the field are whole ones, since the root key
    // id and the nonce follow it.
    std::string out(text);
    for (size_t group = at / 3; group <= (at + to_.size() - 1) / 3; ++group) {
        std::string chars = encode_base64(ByteView(decoded_).subspan(3 * group, std::min<size_t>(3, decoded_.size() - 3 * group)));
        out.replace(4 * group, chars.size(), chars);
    }
    return out;
}

Opener::Opener(const SecretBytes& key, const KeyId& expected_key_id)
    : cipher_(Botan::AEAD_Mode::create_or_throw(std::string(cipher_name), Botan::DECRYPTION)),
      expected_(expected_key_id) {
    require_key_size(key.size());
    cipher_->set_key(key);
}

Opener::~Opener() = default;
Opener::Opener(Opener&&) noexcept = default;

Failure Opener::open(std::string_view text) {
    plaintext_.clear();
    found_key_id_.clear();
    if (!decode_base64_into(text, decoded_)) return Failure::malformed;
    auto view = parse_binary(decoded_);
    if (!view) return Failure::malformed;
    found_key_id_.assign(view->key_id.begin(), view->key_id.end());
    if (!key_id_matches(view->key_id, expected_)) return Failure::wrong_key;

    // GCM decrypts in place: copy ciphertext‖tag into the reused plaintext buffer, finish() drops the tag.
    plaintext_.assign(view->ciphertext.begin(), view->ciphertext.end());
    cipher_->start(view->nonce.data(), view->nonce.size());
    try {
        cipher_->finish(plaintext_);
    } catch (const Botan::Invalid_Authentication_Tag&) {
        plaintext_.clear();
        return Failure::authentication;
    }
    return Failure::none;
}

}  // namespace ik::seal
