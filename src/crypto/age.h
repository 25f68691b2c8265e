// The age v1 file format (https://age-encryption.org/v1) on Botan's primitives: scrypt passphrase,
// X25519 (age1…) and ssh-ed25519 recipients, the STREAM payload and the ASCII armor (read only).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/bytes.h"
#include "util/error.h"

namespace ik::age {

// Why a file did not decrypt, in the classes of the C2SP CCTV age test suite. Every one is an
// ik::Error with ExitCode::backup.
enum class Failure { armor, header, no_match, hmac, payload };

class FormatError : public Error {
public:
    FormatError(Failure failure, std::string message) : Error(ExitCode::backup, std::move(message)), failure_(failure) {}
    Failure failure() const { return failure_; }

private:
    Failure failure_;
};

// One recipient stanza of the header: "-> type arg…" and its body.
struct Stanza {
    std::string type;
    std::vector<std::string> args;
    Bytes body;
};

// The scrypt work factor (log2 N) written by default: chosen so one unlock takes under a second
// on the development machine (bench/README.md).
constexpr int default_work_factor = 16;
// The largest accepted when reading (as the reference implementation): 2^22 × 1 KiB = 4 GiB.
constexpr int max_work_factor = 22;

// Who can open a file: wraps the 16-byte file key into stanzas.
class Recipient {
public:
    virtual ~Recipient() = default;
    virtual std::vector<Stanza> wrap(const SecretBytes& file_key) const = 0;
    // A passphrase stanza must be the only one in a file.
    virtual bool stands_alone() const { return false; }
    // "X25519 age1…", "ssh-ed25519 <tag> <comment>", "scrypt": for messages.
    virtual std::string describe() const = 0;
};

// What opens a file: unwraps the file key from one stanza.
class Identity {
public:
    virtual ~Identity() = default;
    // nullopt: the stanza is not for this identity (other type, other key, wrong passphrase).
    // Throws FormatError(header) when a stanza of its type is malformed.
    virtual std::optional<SecretBytes> unwrap(const Stanza& stanza) const = 0;
};

// "age1…" (X25519) or an OpenSSH public key line "ssh-ed25519 AAAA… [comment]".
// Throws ik::Error(usage) naming the problem.
std::unique_ptr<Recipient> parse_recipient(std::string_view text);
// One recipient per line; blank lines and lines starting with '#' are skipped.
std::vector<std::unique_ptr<Recipient>> parse_recipients_file(std::string_view text, std::string_view where);
std::unique_ptr<Recipient> passphrase_recipient(const SecretBytes& passphrase, int work_factor = default_work_factor);

// An identity file: age's ("AGE-SECRET-KEY-1…" lines, '#' comments) or an unencrypted OpenSSH
// ed25519 private key. Throws ik::Error(usage) naming `where`.
std::vector<std::unique_ptr<Identity>> parse_identities(std::string_view text, std::string_view where);
std::unique_ptr<Identity> passphrase_identity(const SecretBytes& passphrase, int work_factor_limit = max_work_factor);

// A fresh X25519 key pair: "AGE-SECRET-KEY-1…" (in secure memory) and its "age1…".
struct X25519KeyPair {
    SecretBytes identity;
    std::string recipient;
};
X25519KeyPair generate_x25519();

// ---- files ---------------------------------------------------------------------------------

// Encrypts to every recipient (binary, not armored). Throws ik::Error(usage) for no recipient or
// a passphrase mixed with other recipients. `file_key` (optional) receives the file key.
std::string encrypt(const std::vector<const Recipient*>& recipients, ByteView plaintext, SecretBytes* file_key = nullptr);

// Opens a file by its file key, whatever its stanzas: lets a writer that holds only public keys
// prove that what it wrote (header MAC and every payload chunk) opens.
std::unique_ptr<Identity> file_key_identity(const SecretBytes& file_key);

// Whether the bytes look like an age file, binary or armored (for choosing a reader).
bool looks_like_age(std::string_view file);
bool looks_armored(std::string_view file);
// The binary file inside "-----BEGIN AGE ENCRYPTED FILE-----" armor; FormatError(armor).
std::string dearmor(std::string_view armored);

// The parsed header of a binary file, readable without any secret.
struct Header {
    std::vector<Stanza> stanzas;
    Bytes mac;
    size_t mac_input_size = 0;  // bytes of the file covered by the MAC (through "---")
    size_t payload_offset = 0;  // where the 16-byte nonce starts
};
Header parse_header(std::string_view file);

// Decrypts a binary or armored file, releasing plaintext to `sink` one authenticated chunk at a
// time. Throws FormatError; whatever reached `sink` before a payload failure was authentic.
void decrypt(std::string_view file, const std::vector<const Identity*>& identities,
             const std::function<void(ByteView)>& sink);
// The whole plaintext, in secure memory.
SecretBytes decrypt(std::string_view file, const std::vector<const Identity*>& identities);

// ---- encodings used by the formats above (exposed for tests) ---------------------------------

// Bech32 (BIP 173, without its 90-character limit, as age uses it). Data in secure memory since
// it carries secret keys; the text too, for the same reason.
struct Bech32 {
    std::string hrp;  // lowercase
    SecretBytes data;
};
std::optional<Bech32> bech32_decode(std::string_view text);
SecretBytes bech32_encode(std::string_view hrp, ByteView data, bool upper = false);

}  // namespace ik::age
