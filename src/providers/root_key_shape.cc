#include "providers/root_key_shape.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "crypto/seal.h"

namespace ik::providers {
namespace {

// `key` without one trailing "\n" or "\r\n"; `removed` tells whether there was one.
SecretBytes without_line_ending(const SecretBytes& key, bool& removed) {
    SecretBytes text = key;
    removed = !text.empty() && text.back() == '\n';
    if (removed) {
        text.pop_back();
        if (!text.empty() && text.back() == '\r') text.pop_back();
    }
    return text;
}

template <typename Predicate>
bool all_of(const SecretBytes& text, Predicate is) {
    return !text.empty() && std::all_of(text.begin(), text.end(), is);
}

bool is_base64_char(uint8_t c) { return std::isalnum(c) || c == '+' || c == '/' || c == '-' || c == '_'; }
bool is_hex_char(uint8_t c) { return std::isxdigit(c) != 0; }

// Base64 of 32 bytes is 43 characters and one "=" of padding (or 43 unpadded).
bool is_base64_of_32_bytes(const SecretBytes& text) {
    bool padded = text.size() == 44 && text.back() == '=' && text[42] != '=';
    bool unpadded = text.size() == 43;
    SecretBytes body(text.begin(), text.begin() + std::min<size_t>(text.size(), 43));
    return (padded || unpadded) && all_of(body, is_base64_char);
}

bool is_hex_of_32_bytes(const SecretBytes& text) { return text.size() == 64 && all_of(text, is_hex_char); }

struct Diagnosis {
    std::string cause;     // what the bytes look like
    std::string file_fix;  // a shell command fixing the file in place, FILE standing for its path
    std::string fix;       // the same fix in words, for a key that is not in a file
};

std::optional<Diagnosis> diagnose(const SecretBytes& key) {
    bool newline = false;
    SecretBytes text = without_line_ending(key, newline);
    std::string ending = newline ? " and a line ending" : "";
    if (newline && text.size() == seal::key_size)
        return Diagnosis{"it is 32 bytes and a trailing line ending, as `echo` or `kubectl create secret "
                         "--from-literal` add",
                         "truncate -s 32 FILE",
                         "store it again without the line ending (kubectl create secret generic … "
                         "--from-file=KEY=FILE of a file written with `printf %s` or `head -c 32`)"};
    if (is_base64_of_32_bytes(text))
        return Diagnosis{"it is the base64 text of a 32-byte key" + ending + ", but the key is used as raw bytes",
                         "(umask 077 && base64 -d FILE > FILE.raw) && mv FILE.raw FILE",
                         "store the decoded 32 bytes instead (base64 -d), or give the secret storage the "
                         "option base64: true"};
    if (is_hex_of_32_bytes(text))
        return Diagnosis{"it is the hex text of a 32-byte key" + ending + ", but the key is used as raw bytes",
                         "(umask 077 && xxd -r -p FILE > FILE.raw) && mv FILE.raw FILE",
                         "store the decoded 32 bytes instead (xxd -r -p)"};
    return std::nullopt;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

}  // namespace

Error wrong_size_root_key(const SecretBytes& key, const std::string& location, const std::string& file_path) {
    std::string message =
        fmt::format("root key {} is {} bytes; a root key must be exactly {} bytes", location, key.size(), seal::key_size);
    auto diagnosis = diagnose(key);
    if (!diagnosis) return Error(ExitCode::provider, message, "restore the right key (`infra-keys restore BACKUP`)");
    std::string fix = file_path.empty() ? diagnosis->fix : replace_all(diagnosis->file_fix, "FILE", file_path);
    return Error(ExitCode::provider, fmt::format("{}: {}", message, diagnosis->cause),
                 fmt::format("{}; then check with `infra-keys verify`", fix));
}

}  // namespace ik::providers
