#include "crypto/age.h"

#include <algorithm>
#include <array>
#include <charconv>

#include <botan/aead.h>
#include <botan/base64.h>
#include <botan/bigint.h>
#include <botan/curve25519.h>
#include <botan/exceptn.h>
#include <botan/hash.h>
#include <botan/kdf.h>
#include <botan/mac.h>
#include <botan/numthry.h>
#include <botan/pwdhash.h>

#include "crypto/random.h"

namespace ik::age {
namespace {

constexpr std::string_view version_line = "age-encryption.org/v1";
constexpr std::string_view armor_begin = "-----BEGIN AGE ENCRYPTED FILE-----";
constexpr std::string_view armor_end = "-----END AGE ENCRYPTED FILE-----";
constexpr size_t file_key_size = 16;
constexpr size_t stream_nonce_size = 16;
constexpr size_t chunk_size = 64 * 1024;
constexpr size_t tag_size = 16;
constexpr size_t columns = 64;        // base64 characters per line (header bodies and armor)
constexpr size_t bytes_per_line = 48;  // what `columns` characters decode to
constexpr size_t max_whitespace = 1024;
constexpr std::string_view x25519_label = "age-encryption.org/v1/X25519";
constexpr std::string_view ssh_ed25519_label = "age-encryption.org/v1/ssh-ed25519";
constexpr std::string_view scrypt_label = "age-encryption.org/v1/scrypt";
constexpr size_t scrypt_salt_size = 16;

[[noreturn]] void fail_as(Failure failure, std::string message) { throw FormatError(failure, std::move(message)); }
[[noreturn]] void fail_header(std::string message) { fail_as(Failure::header, "age header: " + std::move(message)); }

// ---- base64 ---------------------------------------------------------------------------------

bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// Standard alphabet, canonical (unused bits zero); `padded` says whether '=' padding is required
// (armor) or forbidden (header). nullopt for anything else, including CR, LF and spaces.
std::optional<SecretBytes> decode_base64(std::string_view text, bool padded) {
    size_t data_chars = text.size();
    if (padded) {
        if (text.size() % 4 != 0) return std::nullopt;
        while (data_chars > 0 && text[data_chars - 1] == '=' && text.size() - data_chars < 2) --data_chars;
    } else if (text.size() % 4 == 1) {
        return std::nullopt;
    }
    if (!std::all_of(text.begin(), text.begin() + data_chars, is_base64_char)) return std::nullopt;
    std::string_view data = text.substr(0, data_chars);
    std::string padded_copy(data);
    while (padded_copy.size() % 4 != 0) padded_copy.push_back('=');
    try {
        SecretBytes decoded = Botan::base64_decode(padded_copy, false);
        // Re-encoding must give the same text: no information may hide in the unused bits.
        std::string again = Botan::base64_encode(decoded);
        if (padded ? again != text : again != padded_copy) return std::nullopt;
        return decoded;
    } catch (const Botan::Exception&) {
        return std::nullopt;
    }
}

std::string encode_base64_raw(ByteView bytes) {
    std::string text = Botan::base64_encode(bytes.data(), bytes.size());
    while (!text.empty() && text.back() == '=') text.pop_back();
    return text;
}

// ---- primitives -----------------------------------------------------------------------------

SecretBytes hkdf_sha256(ByteView ikm, ByteView salt, std::string_view info, size_t size = 32) {
    auto kdf = Botan::KDF::create_or_throw("HKDF(SHA-256)");
    return kdf->derive_key(size, ikm.data(), ikm.size(), salt.data(), salt.size(),
                           reinterpret_cast<const uint8_t*>(info.data()), info.size());
}

// X25519; nullopt for an all-zero result (a low-order point), which age forbids.
std::optional<SecretBytes> x25519(ByteView scalar, ByteView point) {
    SecretBytes out(32);
    Botan::curve25519_donna(out.data(), scalar.data(), point.data());
    if (std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; })) return std::nullopt;
    return out;
}

Bytes x25519_public(ByteView scalar) {
    Bytes out(32);
    Botan::curve25519_basepoint(out.data(), scalar.data());
    return out;
}

Bytes chacha_seal(const SecretBytes& key, ByteView nonce, ByteView plaintext) {
    auto aead = Botan::AEAD_Mode::create_or_throw("ChaCha20Poly1305", Botan::ENCRYPTION);
    aead->set_key(key);
    aead->start(nonce.data(), nonce.size());
    SecretBytes buffer(plaintext.begin(), plaintext.end());
    aead->finish(buffer);
    return Bytes(buffer.begin(), buffer.end());
}

std::optional<SecretBytes> chacha_open(const SecretBytes& key, ByteView nonce, ByteView ciphertext) {
    auto aead = Botan::AEAD_Mode::create_or_throw("ChaCha20Poly1305", Botan::DECRYPTION);
    aead->set_key(key);
    aead->start(nonce.data(), nonce.size());
    SecretBytes buffer(ciphertext.begin(), ciphertext.end());
    try {
        aead->finish(buffer);
    } catch (const Botan::Invalid_Authentication_Tag&) {
        return std::nullopt;
    }
    return buffer;
}

const std::array<uint8_t, 12> zero_nonce{};

// A stanza body is the file key sealed under a wrapping key with a zero nonce.
Bytes wrap_file_key(const SecretBytes& wrapping_key, const SecretBytes& file_key) {
    return chacha_seal(wrapping_key, zero_nonce, file_key);
}

std::optional<SecretBytes> unwrap_file_key(const SecretBytes& wrapping_key, const Stanza& stanza) {
    if (stanza.body.size() != file_key_size + tag_size)
        fail_header(fmt::format("{} stanza body is {} bytes; expected {}", stanza.type, stanza.body.size(),
                                file_key_size + tag_size));
    return chacha_open(wrapping_key, zero_nonce, stanza.body);
}

Bytes concat(ByteView a, ByteView b) {
    Bytes out(a.begin(), a.end());
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

Bytes sha256(ByteView data) {
    auto hash = Botan::HashFunction::create_or_throw("SHA-256");
    hash->update(data.data(), data.size());
    return Botan::unlock(hash->final());
}

// A stanza argument decoded to exactly `size` bytes, else a header failure.
SecretBytes decode_argument(const Stanza& stanza, size_t index, size_t size, std::string_view what) {
    auto bytes = decode_base64(stanza.args[index], false);
    if (!bytes || bytes->size() != size)
        fail_header(fmt::format("{} stanza {} is not {} bytes of canonical base64", stanza.type, what, size));
    return *bytes;
}

// ---- X25519 -----------------------------------------------------------------------------------

// X25519 and ssh-ed25519 share the key agreement: an ephemeral share, X25519 with the recipient's
// Montgomery key, for ssh-ed25519 then with a tweak, and HKDF(share ‖ recipient key) to the
// wrapping key. `args` go before the share in the stanza.
Stanza wrap_by_agreement(const SecretBytes& file_key, ByteView their_public, const SecretBytes* tweak,
                         std::string_view label, std::string type, std::vector<std::string> args) {
    SecretBytes ephemeral = crypto::random_key(32);
    Bytes share = x25519_public(ephemeral);
    auto secret = x25519(ephemeral, their_public);
    if (secret && tweak) secret = x25519(*tweak, *secret);
    if (!secret) throw Error(ExitCode::usage, fmt::format("{} recipient is a low-order point", type));
    SecretBytes wrapping = hkdf_sha256(*secret, concat(share, their_public), label);
    args.push_back(encode_base64_raw(share));
    return Stanza{std::move(type), std::move(args), wrap_file_key(wrapping, file_key)};
}

std::optional<SecretBytes> unwrap_by_agreement(const Stanza& stanza, const SecretBytes& share, ByteView scalar,
                                               ByteView our_public, const SecretBytes* tweak, std::string_view label) {
    auto secret = x25519(scalar, share);
    if (secret && tweak) secret = x25519(*tweak, *secret);
    if (!secret) fail_header(fmt::format("{} stanza share is a low-order point", stanza.type));
    return unwrap_file_key(hkdf_sha256(*secret, concat(share, our_public), label), stanza);
}

class X25519Recipient : public Recipient {
public:
    explicit X25519Recipient(Bytes public_key) : public_(std::move(public_key)) {}
    std::vector<Stanza> wrap(const SecretBytes& file_key) const override {
        return {wrap_by_agreement(file_key, public_, nullptr, x25519_label, "X25519", {})};
    }
    std::string describe() const override {
        SecretBytes text = bech32_encode("age", public_);
        return "X25519 " + std::string(text.begin(), text.end());
    }

private:
    Bytes public_;
};

class X25519Identity : public Identity {
public:
    explicit X25519Identity(SecretBytes secret) : secret_(std::move(secret)), public_(x25519_public(secret_)) {}
    std::optional<SecretBytes> unwrap(const Stanza& stanza) const override {
        if (stanza.type != "X25519") return std::nullopt;
        if (stanza.args.size() != 1) fail_header("X25519 stanza must have exactly one argument");
        SecretBytes share = decode_argument(stanza, 0, 32, "share");
        return unwrap_by_agreement(stanza, share, secret_, public_, nullptr, x25519_label);
    }

private:
    SecretBytes secret_;
    Bytes public_;
};

// ---- ssh-ed25519 ------------------------------------------------------------------------------

// The SSH wire encoding of an ed25519 public key: string "ssh-ed25519", string key.
Bytes ssh_wire_key(ByteView ed25519_public) {
    Bytes out;
    auto put = [&out](ByteView field) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(field.size() >> shift));
        out.insert(out.end(), field.begin(), field.end());
    };
    put(as_bytes("ssh-ed25519"));
    put(ed25519_public);
    return out;
}

// The first 4 bytes of SHA-256 of the wire key: names the key in the stanza without revealing it.
std::string ssh_tag(ByteView wire_key) {
    Bytes hash = sha256(wire_key);
    return encode_base64_raw(ByteView(hash).first(4));
}

// The Montgomery u-coordinate of an Edwards25519 point: u = (1 + y) / (1 - y) mod p. Refuses a
// y that is not canonical or names no point on the curve.
std::optional<Bytes> ed25519_to_x25519(ByteView ed25519_public) {
    const Botan::BigInt p = Botan::BigInt::power_of_2(255) - 19;
    Bytes big_endian(ed25519_public.rbegin(), ed25519_public.rend());
    big_endian[0] &= 0x7f;  // the sign bit of x
    Botan::BigInt y(big_endian.data(), big_endian.size());
    if (y >= p) return std::nullopt;
    // x² = (y² − 1) / (d·y² + 1) must be a square for (x, y) to be on the curve.
    const Botan::BigInt d = (p - 121665) * Botan::inverse_mod(Botan::BigInt(121666), p) % p;
    Botan::BigInt y2 = y * y % p;
    Botan::BigInt x2 = (y2 + p - 1) % p * Botan::inverse_mod((d * y2 + 1) % p, p) % p;
    if (x2 != 0 && Botan::power_mod(x2, (p - 1) / 2, p) != 1) return std::nullopt;
    Botan::BigInt one_minus_y = (p + 1 - y) % p;
    if (one_minus_y == 0) return std::nullopt;
    Botan::BigInt u = (y + 1) * Botan::inverse_mod(one_minus_y, p) % p;
    Bytes out(32);
    u.binary_encode(out.data(), out.size());
    std::reverse(out.begin(), out.end());
    return out;
}

SecretBytes ssh_tweak(ByteView wire_key) { return hkdf_sha256({}, wire_key, ssh_ed25519_label); }

class SshEd25519Recipient : public Recipient {
public:
    SshEd25519Recipient(Bytes wire_key, Bytes montgomery, std::string comment)
        : wire_(std::move(wire_key)), public_(std::move(montgomery)), comment_(std::move(comment)) {}
    std::vector<Stanza> wrap(const SecretBytes& file_key) const override {
        SecretBytes tweak = ssh_tweak(wire_);
        return {wrap_by_agreement(file_key, public_, &tweak, ssh_ed25519_label, "ssh-ed25519", {ssh_tag(wire_)})};
    }
    std::string describe() const override {
        return fmt::format("ssh-ed25519 {}{}", ssh_tag(wire_), comment_.empty() ? "" : " " + comment_);
    }

private:
    Bytes wire_;
    Bytes public_;
    std::string comment_;
};

class SshEd25519Identity : public Identity {
public:
    // seed: the 32-byte ed25519 private seed; its X25519 scalar is the first half of SHA-512(seed).
    SshEd25519Identity(const SecretBytes& seed, ByteView ed25519_public) : wire_(ssh_wire_key(ed25519_public)) {
        auto hash = Botan::HashFunction::create_or_throw("SHA-512");
        hash->update(seed);
        SecretBytes digest = hash->final();
        scalar_.assign(digest.begin(), digest.begin() + 32);
        public_ = x25519_public(scalar_);
    }
    std::optional<SecretBytes> unwrap(const Stanza& stanza) const override {
        if (stanza.type != "ssh-ed25519") return std::nullopt;
        if (stanza.args.size() != 2) fail_header("ssh-ed25519 stanza must have exactly two arguments");
        SecretBytes share = decode_argument(stanza, 1, 32, "share");
        if (stanza.args[0] != ssh_tag(wire_)) return std::nullopt;
        SecretBytes tweak = ssh_tweak(wire_);
        return unwrap_by_agreement(stanza, share, scalar_, public_, &tweak, ssh_ed25519_label);
    }

private:
    Bytes wire_;
    SecretBytes scalar_;
    Bytes public_;
};

// ---- scrypt -----------------------------------------------------------------------------------

SecretBytes scrypt_key(const SecretBytes& passphrase, ByteView salt, int work_factor) {
    Bytes labelled_salt = concat(as_bytes(scrypt_label), salt);
    auto family = Botan::PasswordHashFamily::create_or_throw("Scrypt");
    auto scrypt = family->from_params(size_t{1} << work_factor, 8, 1);
    SecretBytes key(32);
    scrypt->derive_key(key.data(), key.size(), reinterpret_cast<const char*>(passphrase.data()), passphrase.size(),
                       labelled_salt.data(), labelled_salt.size());
    return key;
}

class ScryptRecipient : public Recipient {
public:
    ScryptRecipient(SecretBytes passphrase, int work_factor) : passphrase_(std::move(passphrase)), work_factor_(work_factor) {}
    std::vector<Stanza> wrap(const SecretBytes& file_key) const override {
        Bytes salt = crypto::random_bytes(scrypt_salt_size);
        SecretBytes key = scrypt_key(passphrase_, salt, work_factor_);
        return {Stanza{"scrypt", {encode_base64_raw(salt), std::to_string(work_factor_)}, wrap_file_key(key, file_key)}};
    }
    bool stands_alone() const override { return true; }
    std::string describe() const override { return fmt::format("scrypt (work factor {})", work_factor_); }

private:
    SecretBytes passphrase_;
    int work_factor_;
};

// "1".."99" without sign, leading zeros or anything else; nullopt otherwise.
std::optional<int> parse_work_factor(std::string_view text) {
    if (text.empty() || text.size() > 2 || text[0] == '0') return std::nullopt;
    int value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
    return value;
}

class ScryptIdentity : public Identity {
public:
    ScryptIdentity(SecretBytes passphrase, int max_work_factor)
        : passphrase_(std::move(passphrase)), max_work_factor_(max_work_factor) {}
    std::optional<SecretBytes> unwrap(const Stanza& stanza) const override {
        if (stanza.type != "scrypt") return std::nullopt;
        if (stanza.args.size() != 2) fail_header("scrypt stanza must have exactly two arguments");
        SecretBytes salt = decode_argument(stanza, 0, scrypt_salt_size, "salt");
        auto work_factor = parse_work_factor(stanza.args[1]);
        if (!work_factor) fail_header("scrypt stanza work factor is not a decimal number");
        if (*work_factor > max_work_factor_)
            fail_header(fmt::format("scrypt work factor {} is over the limit {}", *work_factor, max_work_factor_));
        if (stanza.body.size() != file_key_size + tag_size) fail_header("scrypt stanza body has the wrong size");
        return unwrap_file_key(scrypt_key(passphrase_, salt, *work_factor), stanza);
    }

private:
    SecretBytes passphrase_;
    int max_work_factor_;
};

// ---- OpenSSH keys -------------------------------------------------------------------------------

// Reads SSH wire fields (uint32 length + bytes) from a buffer.
class SshReader {
public:
    SshReader(ByteView data, std::string_view where) : data_(data), where_(where) {}
    uint32_t u32() {
        ByteView b = take(4);
        return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    }
    ByteView string() { return take(u32()); }
    bool at_end() const { return offset_ == data_.size(); }

private:
    ByteView take(size_t size) {
        if (data_.size() - offset_ < size) throw Error(ExitCode::usage, fmt::format("{}: truncated OpenSSH key", where_));
        ByteView out = data_.subspan(offset_, size);
        offset_ += size;
        return out;
    }
    ByteView data_;
    std::string_view where_;
    size_t offset_ = 0;
};

std::unique_ptr<Recipient> parse_ssh_recipient(std::string_view line) {
    std::vector<std::string_view> parts;
    for (size_t start = 0; start < line.size();) {
        size_t end = line.find(' ', start);
        if (end == std::string_view::npos) end = line.size();
        if (end > start) parts.push_back(line.substr(start, end - start));
        start = end + 1;
    }
    if (parts.size() < 2) throw Error(ExitCode::usage, "ssh-ed25519 recipient has no key after the type");
    auto wire = decode_base64(parts[1], true);
    if (!wire) throw Error(ExitCode::usage, "ssh-ed25519 recipient key is not valid base64");
    SshReader in(*wire, "ssh-ed25519 recipient");
    if (as_text(in.string()) != "ssh-ed25519") throw Error(ExitCode::usage, "ssh-ed25519 recipient holds another key type");
    ByteView key = in.string();
    if (key.size() != 32 || !in.at_end()) throw Error(ExitCode::usage, "ssh-ed25519 recipient key is not 32 bytes");
    auto montgomery = ed25519_to_x25519(key);
    if (!montgomery) throw Error(ExitCode::usage, "ssh-ed25519 recipient key is not a point on the curve");
    std::string comment;
    for (size_t i = 2; i < parts.size(); ++i) comment += (comment.empty() ? "" : " ") + std::string(parts[i]);
    return std::make_unique<SshEd25519Recipient>(Bytes(wire->begin(), wire->end()), *montgomery, comment);
}

constexpr std::string_view openssh_begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
constexpr std::string_view openssh_end = "-----END OPENSSH PRIVATE KEY-----";

std::unique_ptr<Identity> parse_openssh_identity(std::string_view text, std::string_view where) {
    auto bad = [&](std::string_view why) { return Error(ExitCode::usage, fmt::format("{}: {}", where, why)); };
    size_t begin = text.find(openssh_begin);
    size_t end = text.find(openssh_end);
    if (begin == std::string_view::npos || end == std::string_view::npos || end < begin)
        throw bad("not an OpenSSH private key");
    std::string body;
    for (char c : text.substr(begin + openssh_begin.size(), end - begin - openssh_begin.size()))
        if (!std::isspace(static_cast<unsigned char>(c))) body.push_back(c);
    auto decoded = decode_base64(body, true);
    if (!decoded) throw bad("OpenSSH private key is not valid base64");
    constexpr std::string_view magic{"openssh-key-v1\0", 15};
    if (decoded->size() < magic.size() || as_text(ByteView(*decoded).first(magic.size())) != magic)
        throw bad("not an OpenSSH private key (bad magic)");
    SshReader in(ByteView(*decoded).subspan(magic.size()), where);
    if (as_text(in.string()) != "none" || as_text(in.string()) != "none")
        throw bad("the OpenSSH key is passphrase-protected; give an unencrypted copy (ssh-keygen -p -N '')");
    in.string();  // kdf options
    if (in.u32() != 1) throw bad("the OpenSSH file must hold exactly one key");
    in.string();  // public key blob
    SshReader secret(in.string(), where);
    if (secret.u32() != secret.u32()) throw bad("OpenSSH key check bytes differ (corrupt file)");
    std::string_view type = as_text(secret.string());
    if (type != "ssh-ed25519") throw bad(fmt::format("OpenSSH key type {} is not supported; use ssh-ed25519", type));
    ByteView pub = secret.string();
    ByteView priv = secret.string();
    if (pub.size() != 32 || priv.size() != 64) throw bad("malformed ssh-ed25519 key");
    SecretBytes seed(priv.begin(), priv.begin() + 32);
    return std::make_unique<SshEd25519Identity>(seed, pub);
}

// ---- header ---------------------------------------------------------------------------------

// One line without its '\n'; the header requires every line to end in one.
std::string_view take_line(std::string_view file, size_t& offset) {
    size_t end = file.find('\n', offset);
    if (end == std::string_view::npos) fail_header("is truncated (a line without its newline)");
    std::string_view line = file.substr(offset, end - offset);
    offset = end + 1;
    return line;
}

std::vector<std::string_view> split_spaces(std::string_view line) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
        size_t end = line.find(' ', start);
        parts.push_back(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        if (end == std::string_view::npos) return parts;
        start = end + 1;
    }
}

bool is_valid_argument(std::string_view arg) {
    return !arg.empty() && std::all_of(arg.begin(), arg.end(), [](char c) { return c >= 33 && c <= 126; });
}

Stanza parse_stanza(std::string_view line, std::string_view file, size_t& offset) {
    std::vector<std::string_view> parts = split_spaces(line.substr(3));
    for (auto part : parts)
        if (!is_valid_argument(part)) fail_header("stanza has an empty argument or a character outside ASCII 33..126");
    Stanza stanza{std::string(parts[0]), {parts.begin() + 1, parts.end()}, {}};
    // Body lines are full (64 columns) until one shorter line, possibly empty, ends the body.
    while (true) {
        std::string_view body_line = take_line(file, offset);
        if (body_line.size() > columns) fail_header("stanza body line is longer than 64 columns");
        auto decoded = decode_base64(body_line, false);
        if (!decoded) fail_header("stanza body is not canonical unpadded base64");
        stanza.body.insert(stanza.body.end(), decoded->begin(), decoded->end());
        if (body_line.size() < columns) return stanza;
    }
}

// ---- armor ------------------------------------------------------------------------------------

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trim_cr(std::string_view line) { return line.ends_with('\r') ? line.substr(0, line.size() - 1) : line; }

// Calls `each(line, number)` for every line of a text file that is neither blank nor a '#' comment.
void for_each_entry(std::string_view text, const std::function<void(std::string_view, size_t)>& each) {
    size_t number = 0;
    for (size_t start = 0; start < text.size();) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++number;
        while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
        if (!line.empty() && !line.starts_with('#')) each(line, number);
    }
}

[[noreturn]] void fail_armor(std::string message) { fail_as(Failure::armor, "age armor: " + std::move(message)); }

// ---- payload ----------------------------------------------------------------------------------

std::array<uint8_t, 12> chunk_nonce(uint64_t counter, bool last) {
    std::array<uint8_t, 12> nonce{};
    for (int i = 0; i < 8; ++i) nonce[10 - i] = static_cast<uint8_t>(counter >> (8 * i));
    nonce[11] = last ? 1 : 0;
    return nonce;
}

void stream_decrypt(const SecretBytes& key, std::string_view payload, const std::function<void(ByteView)>& sink) {
    auto fail_payload = [](std::string why) { fail_as(Failure::payload, "age payload: " + why); };
    size_t offset = 0;
    for (uint64_t counter = 0;; ++counter) {
        size_t remaining = payload.size() - offset;
        if (remaining == 0) fail_payload("is truncated (no final chunk)");
        size_t size = std::min(remaining, chunk_size + tag_size);
        if (size < tag_size) fail_payload("chunk is shorter than its tag");
        if (size == tag_size && counter > 0) fail_payload("final chunk is empty");
        ByteView chunk = as_bytes(payload.substr(offset, size));
        bool last = size < chunk_size + tag_size;
        auto plain = chacha_open(key, chunk_nonce(counter, last), chunk);
        if (!plain && !last) {  // a full-size chunk may be the last one
            last = true;
            plain = chacha_open(key, chunk_nonce(counter, true), chunk);
        }
        if (!plain) fail_payload(fmt::format("chunk {} failed authentication (modified or truncated)", counter));
        offset += size;
        sink(*plain);
        if (last) {
            if (offset != payload.size()) fail_payload("has data after the final chunk");
            return;
        }
    }
}

SecretBytes unwrap_any(const Header& header, const std::vector<const Identity*>& identities) {
    for (const Identity* identity : identities)
        for (const Stanza& stanza : header.stanzas)
            if (auto file_key = identity->unwrap(stanza)) {
                if (file_key->size() != file_key_size) fail_header("file key has the wrong size");
                return *file_key;
            }
    fail_as(Failure::no_match, "no identity matches any recipient of the age file (wrong passphrase or key?)");
}

void check_stanza_rules(const Header& header) {
    bool has_scrypt = std::any_of(header.stanzas.begin(), header.stanzas.end(),
                                  [](const Stanza& s) { return s.type == "scrypt"; });
    if (has_scrypt && header.stanzas.size() != 1) fail_header("a passphrase (scrypt) stanza must be the only stanza");
}

}  // namespace

// ---- bech32 -----------------------------------------------------------------------------------

namespace {
constexpr std::string_view bech32_charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

uint32_t bech32_polymod(ByteView values) {
    constexpr uint32_t generator[] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    uint32_t checksum = 1;
    for (uint8_t v : values) {
        uint32_t top = checksum >> 25;
        checksum = ((checksum & 0x1ffffff) << 5) ^ v;
        for (int i = 0; i < 5; ++i)
            if ((top >> i) & 1) checksum ^= generator[i];
    }
    return checksum;
}

SecretBytes hrp_expand(std::string_view hrp) {
    SecretBytes out;
    for (char c : hrp) out.push_back(static_cast<uint8_t>(c) >> 5);
    out.push_back(0);
    for (char c : hrp) out.push_back(static_cast<uint8_t>(c) & 31);
    return out;
}

// Regroups a bit string from `from`-bit into `to`-bit values (BIP 173's convertbits). Encoding
// pads the last value with zero bits; decoding refuses padding of `from` bits or more, or not zero.
std::optional<SecretBytes> regroup(ByteView in, int from, int to, bool pad) {
    SecretBytes out;
    uint32_t accumulator = 0;
    int bits = 0;
    const uint32_t mask = (1u << to) - 1;
    for (uint8_t value : in) {
        accumulator = (accumulator << from) | value;
        bits += from;
        while (bits >= to) {
            bits -= to;
            out.push_back(static_cast<uint8_t>((accumulator >> bits) & mask));
        }
    }
    if (pad && bits > 0) out.push_back(static_cast<uint8_t>((accumulator << (to - bits)) & mask));
    if (!pad && (bits >= from || (accumulator & ((1u << bits) - 1)) != 0)) return std::nullopt;
    return out;
}
}  // namespace

std::optional<Bech32> bech32_decode(std::string_view text) {
    bool lower = false, upper = false;
    for (char c : text) {
        if (c < 33 || c > 126) return std::nullopt;
        lower |= c >= 'a' && c <= 'z';
        upper |= c >= 'A' && c <= 'Z';
    }
    if (lower && upper) return std::nullopt;
    size_t separator = text.rfind('1');
    if (separator == std::string_view::npos || separator == 0 || separator + 7 > text.size()) return std::nullopt;
    Bech32 result;
    for (char c : text.substr(0, separator)) result.hrp.push_back(static_cast<char>(std::tolower(c)));
    SecretBytes values;
    for (char c : text.substr(separator + 1)) {
        size_t at = bech32_charset.find(static_cast<char>(std::tolower(c)));
        if (at == std::string_view::npos) return std::nullopt;
        values.push_back(static_cast<uint8_t>(at));
    }
    SecretBytes check = hrp_expand(result.hrp);
    check.insert(check.end(), values.begin(), values.end());
    if (bech32_polymod(check) != 1) return std::nullopt;
    values.resize(values.size() - 6);
    auto data = regroup(values, 5, 8, /*pad=*/false);
    if (!data) return std::nullopt;
    result.data = std::move(*data);
    return result;
}

SecretBytes bech32_encode(std::string_view hrp, ByteView data, bool upper) {
    SecretBytes values = *regroup(data, 8, 5, /*pad=*/true);
    SecretBytes check = hrp_expand(hrp);
    check.insert(check.end(), values.begin(), values.end());
    check.insert(check.end(), 6, 0);
    uint32_t polymod = bech32_polymod(check) ^ 1;
    for (int i = 0; i < 6; ++i) values.push_back(static_cast<uint8_t>((polymod >> (5 * (5 - i))) & 31));
    SecretBytes out(hrp.begin(), hrp.end());
    out.push_back('1');
    for (uint8_t v : values) out.push_back(static_cast<uint8_t>(bech32_charset[v]));
    if (upper)
        for (auto& c : out) c = static_cast<uint8_t>(std::toupper(c));
    return out;
}

// ---- recipients and identities -------------------------------------------------------------------

std::unique_ptr<Recipient> parse_recipient(std::string_view text) {
    if (text.starts_with("ssh-ed25519 ")) return parse_ssh_recipient(text);
    if (text.starts_with("ssh-")) throw Error(ExitCode::usage, "only ssh-ed25519 SSH keys can be age recipients");
    auto decoded = bech32_decode(text);
    if (!decoded || decoded->hrp != "age" || decoded->data.size() != 32 || text != std::string_view(
            reinterpret_cast<const char*>(bech32_encode("age", decoded->data).data()), text.size()))
        throw Error(ExitCode::usage, fmt::format("recipient '{}' is neither age1… (X25519) nor ssh-ed25519 …", text));
    return std::make_unique<X25519Recipient>(Bytes(decoded->data.begin(), decoded->data.end()));
}

std::vector<std::unique_ptr<Recipient>> parse_recipients_file(std::string_view text, std::string_view where) {
    std::vector<std::unique_ptr<Recipient>> out;
    for_each_entry(text, [&](std::string_view line, size_t number) {
        try {
            out.push_back(parse_recipient(line));
        } catch (const Error& e) {
            throw Error(ExitCode::usage, fmt::format("{} line {}: {}", where, number, e.what()));
        }
    });
    if (out.empty()) throw Error(ExitCode::usage, fmt::format("{} holds no recipient", where));
    return out;
}

std::unique_ptr<Recipient> passphrase_recipient(const SecretBytes& passphrase, int work_factor) {
    if (passphrase.empty()) throw Error(ExitCode::usage, "the passphrase is empty");
    return std::make_unique<ScryptRecipient>(passphrase, work_factor);
}

std::unique_ptr<Identity> passphrase_identity(const SecretBytes& passphrase, int work_factor_limit) {
    return std::make_unique<ScryptIdentity>(passphrase, work_factor_limit);
}

std::vector<std::unique_ptr<Identity>> parse_identities(std::string_view text, std::string_view where) {
    if (text.find(openssh_begin) != std::string_view::npos) {
        std::vector<std::unique_ptr<Identity>> out;
        out.push_back(parse_openssh_identity(text, where));
        return out;
    }
    std::vector<std::unique_ptr<Identity>> out;
    for_each_entry(text, [&](std::string_view line, size_t number) {
        auto decoded = bech32_decode(line);
        if (!decoded || decoded->hrp != "age-secret-key-" || decoded->data.size() != 32)
            throw Error(ExitCode::usage, fmt::format("{} line {}: not an AGE-SECRET-KEY-1… identity", where, number));
        out.push_back(std::make_unique<X25519Identity>(decoded->data));
    });
    if (out.empty()) throw Error(ExitCode::usage, fmt::format("{} holds no identity", where));
    return out;
}

namespace {
class FileKeyIdentity : public Identity {
public:
    explicit FileKeyIdentity(SecretBytes file_key) : file_key_(std::move(file_key)) {}
    std::optional<SecretBytes> unwrap(const Stanza&) const override { return file_key_; }

private:
    SecretBytes file_key_;
};
}  // namespace

std::unique_ptr<Identity> file_key_identity(const SecretBytes& file_key) {
    return std::make_unique<FileKeyIdentity>(file_key);
}

X25519KeyPair generate_x25519() {
    SecretBytes secret = crypto::random_key(32);
    SecretBytes recipient = bech32_encode("age", x25519_public(secret));
    return {bech32_encode("age-secret-key-", secret, /*upper=*/true), std::string(recipient.begin(), recipient.end())};
}

// ---- files --------------------------------------------------------------------------------------

std::string encrypt(const std::vector<const Recipient*>& recipients, ByteView plaintext, SecretBytes* file_key_out) {
    if (recipients.empty()) throw Error(ExitCode::usage, "no recipient to encrypt to");
    for (const Recipient* r : recipients)
        if (r->stands_alone() && recipients.size() > 1)
            throw Error(ExitCode::usage, "a passphrase cannot be combined with other recipients (age forbids it)");
    SecretBytes file_key = crypto::random_key(file_key_size);
    if (file_key_out) *file_key_out = file_key;

    std::string header = std::string(version_line) + "\n";
    for (const Recipient* r : recipients)
        for (const Stanza& s : r->wrap(file_key)) {
            header += "-> " + s.type;
            for (const auto& arg : s.args) header += " " + arg;
            header += "\n";
            std::string body = encode_base64_raw(s.body);
            for (size_t at = 0; at <= body.size(); at += columns) header += body.substr(at, columns) + "\n";
        }
    header += "---";
    auto hmac = Botan::MessageAuthenticationCode::create_or_throw("HMAC(SHA-256)");
    hmac->set_key(hkdf_sha256(file_key, {}, "header"));
    hmac->update(header);
    header += " " + encode_base64_raw(hmac->final()) + "\n";

    Bytes nonce = crypto::random_bytes(stream_nonce_size);
    SecretBytes payload_key = hkdf_sha256(file_key, nonce, "payload");
    std::string out = header + std::string(as_text(nonce));
    size_t offset = 0;
    for (uint64_t counter = 0;; ++counter) {
        size_t size = std::min(chunk_size, plaintext.size() - offset);
        bool last = offset + size == plaintext.size();
        Bytes sealed = chacha_seal(payload_key, chunk_nonce(counter, last), plaintext.subspan(offset, size));
        out += as_text(sealed);
        offset += size;
        if (last) return out;
    }
}

bool looks_armored(std::string_view file) {
    size_t first = 0;
    while (first < file.size() && is_space(file[first])) ++first;
    return file.substr(first).starts_with("-----BEGIN");
}

bool looks_like_age(std::string_view file) {
    return file.starts_with(std::string(version_line) + "\n") || looks_armored(file);
}

std::string dearmor(std::string_view armored) {
    size_t offset = 0;
    auto next_line = [&]() -> std::optional<std::string_view> {
        if (offset >= armored.size()) return std::nullopt;
        size_t end = armored.find('\n', offset);
        if (end == std::string_view::npos) end = armored.size();
        std::string_view line = trim_cr(armored.substr(offset, end - offset));
        offset = end + 1;
        return line;
    };
    // Blank lines (up to 1 KiB of whitespace) may precede the armor.
    std::optional<std::string_view> line;
    while ((line = next_line()) && std::all_of(line->begin(), line->end(), is_space))
        if (offset > max_whitespace) fail_armor("too much leading whitespace");
    if (!line || *line != armor_begin) fail_armor("does not start with -----BEGIN AGE ENCRYPTED FILE-----");

    std::string binary;
    bool short_line_seen = false;
    while (true) {
        line = next_line();
        if (!line) fail_armor("has no -----END AGE ENCRYPTED FILE----- line");
        if (*line == armor_end) break;
        if (short_line_seen) fail_armor("a short line is not the last one");
        if (line->size() > columns) fail_armor("line is longer than 64 columns");
        if (line->empty()) fail_armor("has an empty line");
        auto decoded = decode_base64(*line, true);
        if (!decoded) fail_armor("line is not canonical padded base64");
        binary.append(reinterpret_cast<const char*>(decoded->data()), decoded->size());
        short_line_seen = decoded->size() < bytes_per_line;
    }
    std::string_view rest = offset < armored.size() ? armored.substr(offset) : std::string_view{};
    if (!std::all_of(rest.begin(), rest.end(), is_space)) fail_armor("has data after the END line");
    if (rest.size() >= max_whitespace) fail_armor("too much trailing whitespace");
    return binary;
}

Header parse_header(std::string_view file) {
    if (file.empty()) fail_header("the file is empty");
    size_t offset = 0;
    if (take_line(file, offset) != version_line) fail_header("not an age v1 file (first line)");
    Header header;
    while (true) {
        size_t line_start = offset;
        std::string_view line = take_line(file, offset);
        if (line.starts_with("-> ")) {
            header.stanzas.push_back(parse_stanza(line, file, offset));
        } else if (line.starts_with("---")) {
            std::vector<std::string_view> parts = split_spaces(line);
            if (parts[0] != "---" || parts.size() != 2) fail_header("malformed MAC line");
            auto mac = decode_base64(parts[1], false);
            if (!mac || mac->size() != 32) fail_header("MAC is not 32 bytes of canonical base64");
            header.mac.assign(mac->begin(), mac->end());
            header.mac_input_size = line_start + 3;
            header.payload_offset = offset;
            return header;
        } else {
            fail_header("unexpected line (neither a stanza nor the MAC)");
        }
    }
}

void decrypt(std::string_view file, const std::vector<const Identity*>& identities,
             const std::function<void(ByteView)>& sink) {
    if (looks_armored(file)) {
        std::string binary = dearmor(file);
        decrypt(binary, identities, sink);
        return;
    }
    Header header = parse_header(file);
    check_stanza_rules(header);
    SecretBytes file_key = unwrap_any(header, identities);

    auto hmac = Botan::MessageAuthenticationCode::create_or_throw("HMAC(SHA-256)");
    hmac->set_key(hkdf_sha256(file_key, {}, "header"));
    hmac->update(reinterpret_cast<const uint8_t*>(file.data()), header.mac_input_size);
    if (!hmac->verify_mac(header.mac.data(), header.mac.size()))
        fail_as(Failure::hmac, "age header MAC does not match (the header was modified)");

    std::string_view rest = file.substr(header.payload_offset);
    if (rest.size() < stream_nonce_size) fail_header("is truncated (no payload nonce)");
    SecretBytes payload_key = hkdf_sha256(file_key, as_bytes(rest.substr(0, stream_nonce_size)), "payload");
    stream_decrypt(payload_key, rest.substr(stream_nonce_size), sink);
}

SecretBytes decrypt(std::string_view file, const std::vector<const Identity*>& identities) {
    SecretBytes plaintext;
    decrypt(file, identities, [&plaintext](ByteView chunk) { plaintext.insert(plaintext.end(), chunk.begin(), chunk.end()); });
    return plaintext;
}

}  // namespace ik::age
