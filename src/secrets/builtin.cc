#include "secrets/builtin.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/files.h"

namespace ik::secrets {
namespace fs = std::filesystem;
namespace {

constexpr char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool is_url(Encoding e) { return e == Encoding::url_padded || e == Encoding::url_raw; }
bool is_padded(Encoding e) { return e == Encoding::std_padded || e == Encoding::url_padded; }

int sextet(uint8_t c, const char* alphabet) {
    const char* found = std::strchr(alphabet, c);
    return c != 0 && found ? static_cast<int>(found - alphabet) : -1;
}

[[noreturn]] void not_base64(const std::string& what) {
    fail(ExitCode::usage, "{} is not valid base64 (the storage has a base64 option)", what);
}

class PlaintextStorage : public SecretStorage {
public:
    explicit PlaintextStorage(const config::SecretStorage& entry) : encoding_(encoding_of(entry)) {}
    std::string kind() const override { return "plaintext"; }
    std::optional<SecretBytes> get(const std::string& name) override {
        return decode(encoding_, SecretBytes(name.begin(), name.end()), describe(name));
    }
    void set(const std::string& name, const SecretBytes&) override {
        fail(ExitCode::usage, "cannot write {}: plaintext secrets are read-only", describe(name));
    }
    // The name IS the value, so it never appears in a message.
    std::string describe(const std::string&) const override { return "plaintext value"; }

private:
    Encoding encoding_;
};

class EnvStorage : public SecretStorage {
public:
    EnvStorage(const config::SecretStorage& entry, config::Environment env)
        : encoding_(encoding_of(entry)), env_(std::move(env)) {}
    std::string kind() const override { return "env"; }
    std::optional<SecretBytes> get(const std::string& name) override {
        auto value = env_(name);
        if (!value) return std::nullopt;
        return decode(encoding_, SecretBytes(value->begin(), value->end()), describe(name));
    }
    void set(const std::string& name, const SecretBytes&) override {
        fail(ExitCode::usage, "cannot write {}: environment variables are read-only", describe(name));
    }
    std::string describe(const std::string& name) const override { return "env " + name; }

private:
    Encoding encoding_;
    config::Environment env_;
};

class UnsupportedStorage : public SecretStorage {
public:
    explicit UnsupportedStorage(const config::SecretStorage& entry) : entry_(entry) {}
    std::string kind() const override { return entry_.kind; }
    std::optional<SecretBytes> get(const std::string&) override { refuse(); }
    void set(const std::string&, const SecretBytes&) override { refuse(); }
    std::string describe(const std::string& name) const override {
        return fmt::format("{} secret {} in storage {}", entry_.kind, name, entry_.name);
    }

private:
    [[noreturn]] void refuse() const {
        fail(ExitCode::usage,
             "secret storage \"{}\" of kind {} is not supported by infra-keys (supported: plaintext, env, file, kubernetes)",
             entry_.name, entry_.kind);
    }
    config::SecretStorage entry_;
};

// Every directory created for a key file is as private as the key (0700, whatever the umask),
// not only the last one: a new ~/.infra/keys/ must not leave ~/.infra listable by others.
void make_parent_directory(const std::string& path) {
    std::vector<fs::path> missing;  // deepest first
    for (fs::path dir = fs::path(path).parent_path(); !dir.empty() && !fs::exists(dir); dir = dir.parent_path()) {
        missing.push_back(dir);
        if (dir == dir.parent_path()) break;
    }
    for (auto dir = missing.rbegin(); dir != missing.rend(); ++dir) {
        if (::mkdir(dir->c_str(), 0700) != 0) {
            if (errno == EEXIST) continue;  // made meanwhile by someone else: theirs, not ours to change
            fail(ExitCode::provider, "cannot create directory {}: {}", dir->string(), std::strerror(errno));
        }
        if (::chmod(dir->c_str(), 0700) != 0)
            fail(ExitCode::provider, "cannot create directory {}: {}", dir->string(), std::strerror(errno));
    }
}

}  // namespace

Encoding encoding_of(const config::SecretStorage& entry) {
    bool url = entry.flag("base64urlencoded");
    bool raw = entry.flag("base64raw");
    if (!entry.flag("base64") && !url && !raw) return Encoding::none;
    if (url) return raw ? Encoding::url_raw : Encoding::url_padded;
    return raw ? Encoding::std_raw : Encoding::std_padded;
}

SecretBytes decode(Encoding encoding, const SecretBytes& text, const std::string& what) {
    if (encoding == Encoding::none) return text;
    // Go's decoders skip line breaks, so a file written by `base64` (with its newline) decodes.
    SecretBytes clean;
    clean.reserve(text.size());
    for (uint8_t c : text)
        if (c != '\r' && c != '\n') clean.push_back(c);
    size_t padding = 0;
    if (is_padded(encoding)) {
        if (clean.size() % 4 != 0) not_base64(what);
        while (padding < 2 && !clean.empty() && clean.back() == '=') {
            clean.pop_back();
            ++padding;
        }
        if ((4 - clean.size() % 4) % 4 != padding) not_base64(what);
    }
    if (clean.size() % 4 == 1) not_base64(what);
    const char* alphabet = is_url(encoding) ? url_alphabet : std_alphabet;
    SecretBytes out;
    out.reserve(clean.size() * 3 / 4);
    uint32_t bits = 0;
    int count = 0;
    for (uint8_t c : clean) {
        int v = sextet(c, alphabet);
        if (v < 0) not_base64(what);
        bits = (bits << 6) | static_cast<uint32_t>(v);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out.push_back(static_cast<uint8_t>(bits >> count));
        }
    }
    bits = 0;
    return out;
}

SecretBytes encode(Encoding encoding, const SecretBytes& value) {
    if (encoding == Encoding::none) return value;
    const char* alphabet = is_url(encoding) ? url_alphabet : std_alphabet;
    SecretBytes out;
    out.reserve((value.size() + 2) / 3 * 4);
    uint32_t bits = 0;
    int count = 0;
    for (uint8_t b : value) {
        bits = (bits << 8) | b;
        count += 8;
        while (count >= 6) {
            count -= 6;
            out.push_back(static_cast<uint8_t>(alphabet[(bits >> count) & 0x3f]));
        }
    }
    if (count > 0) out.push_back(static_cast<uint8_t>(alphabet[(bits << (6 - count)) & 0x3f]));
    if (is_padded(encoding))
        while (out.size() % 4 != 0) out.push_back('=');
    bits = 0;
    return out;
}

FileStorage::FileStorage(const config::SecretStorage& entry) : base_(entry.get("path")), encoding_(encoding_of(entry)) {}

std::string FileStorage::path_of(const std::string& name) const {
    // Like Go's filepath.Join: an absolute NAME still lands under the base directory.
    if (base_.empty()) return name;
    return (fs::path(base_) / fs::path(name).relative_path()).lexically_normal().string();
}

namespace {

// Key files are the root key provider's: their I/O errors exit as provider errors (3).
template <typename Action>
auto key_file_io(Action&& action) {
    try {
        return action();
    } catch (const files::FileError& e) {
        throw Error(ExitCode::provider, e.what());
    }
}

}  // namespace

std::optional<SecretBytes> FileStorage::get(const std::string& name) {
    auto contents = key_file_io([&] { return files::read_secret(path_of(name)); });
    if (!contents) return std::nullopt;
    return decode(encoding_, *contents, describe(name));
}

void FileStorage::set(const std::string& name, const SecretBytes& value) {
    std::string path = path_of(name);
    make_parent_directory(path);
    SecretBytes stored = encode(encoding_, value);
    key_file_io([&] { return files::write_atomic(path, stored, 0600); });
}

void FileStorage::remove(const std::string& name) {
    std::string path = path_of(name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        fail(ExitCode::provider, "cannot delete {}: {}", describe(name), std::strerror(errno));
    key_file_io([&] { files::fsync_directory(files::directory_of(path)); });
}

void FileStorage::rename(const std::string& from, const std::string& to) {
    key_file_io([&] { files::replace(path_of(from), path_of(to)); });
}

std::vector<std::string> FileStorage::names_with_prefix(const std::string& prefix) {
    fs::path full(path_of(prefix));
    std::string dir = files::directory_of(full.string());
    std::string start = full.filename().string();
    std::string name_dir = fs::path(prefix).parent_path().string();
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        std::string file = entry.path().filename().string();
        if (file.rfind(start, 0) != 0) continue;
        out.push_back(name_dir.empty() ? file : (fs::path(name_dir) / file).string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string FileStorage::describe(const std::string& name) const {
    std::string path = path_of(name);
    if (auto target = files::symlink_target(path)) return fmt::format("file {} (a symlink: written through to {})", path, *target);
    return "file " + path;
}

std::unique_ptr<SecretStorage> make_plaintext_storage(const config::SecretStorage& entry) {
    return std::make_unique<PlaintextStorage>(entry);
}

std::unique_ptr<SecretStorage> make_env_storage(const config::SecretStorage& entry, const config::Environment& env) {
    return std::make_unique<EnvStorage>(entry, env);
}

std::unique_ptr<SecretStorage> make_file_storage(const config::SecretStorage& entry) {
    return std::make_unique<FileStorage>(entry);
}

std::unique_ptr<SecretStorage> make_unsupported_storage(const config::SecretStorage& entry) {
    return std::make_unique<UnsupportedStorage>(entry);
}

std::string kubernetes_secret_name(const std::string& name) {
    std::string out = name;
    for (char& c : out) {
        bool allowed = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '/';
        if (!allowed || static_cast<unsigned char>(c) >= 0x80) c = '_';
    }
    size_t slash = out.find('/');
    if (slash == std::string::npos || out.find('/', slash + 1) != std::string::npos || slash == 0 ||
        slash + 1 == out.size())
        fail(ExitCode::usage, "kubernetes secret \"{}\" must be OBJECT/KEY with exactly one /", out);
    return out;
}

}  // namespace ik::secrets
