#include "providers/native.h"

#include "crypto/random.h"
#include "crypto/seal.h"
#include "providers/root_key_shape.h"
#include "secrets/builtin.h"
#include "util/error.h"
#include "util/files.h"
#include "util/output.h"

namespace ik::providers {
namespace {

// A root key that exists only in this process (a backup's), never written anywhere.
class MemoryStorage : public secrets::SecretStorage {
public:
    explicit MemoryStorage(SecretBytes value) : value_(std::move(value)) {}
    std::string kind() const override { return "memory"; }
    std::optional<SecretBytes> get(const std::string&) override { return value_; }
    void set(const std::string&, const SecretBytes& value) override { value_ = value; }
    std::string describe(const std::string&) const override { return "held in memory"; }

private:
    SecretBytes value_;
};

// docs/infra-format.md §5: a native root key has no wrapped form, so the db key it seals carries SHA-256("")'s prefix.
const seal::KeyId& root_key_key_id() {
    static const seal::KeyId id = seal::key_id_of(ByteView());
    return id;
}

}  // namespace

NativeProvider::NativeProvider(secrets::SecretStorage& storage, std::string root_key_id)
    : storage_(storage), root_key_id_(std::move(root_key_id)) {}

NativeProvider::NativeProvider(std::unique_ptr<secrets::SecretStorage> storage, std::string root_key_id)
    : owned_(std::move(storage)), storage_(*owned_), root_key_id_(std::move(root_key_id)) {}

std::string NativeProvider::root_key_location() const { return storage_.describe(root_key_id_); }

void NativeProvider::warn_if_readable_by_others() {
    auto file = storage_.file_of(root_key_id_);
    if (warned_ || !file) return;
    const std::string& path = *file;
    if (!files::group_or_world_accessible(path)) return;
    warned_ = true;
    out::warn("root key file {} is accessible by group or others; restrict it with `chmod 600 {}`", path, path);
}

std::vector<std::string> NativeProvider::status(ByteView) {
    for (const auto& warning : storage_.warnings(root_key_id_)) out::warn("{}", warning);
    return {};
}

bool NativeProvider::root_key_exists() { return storage_.get(root_key_id_).has_value(); }

SecretBytes NativeProvider::root_key() {
    auto key = storage_.get(root_key_id_);
    if (!key) fail(ExitCode::provider, "root key {} does not exist", root_key_location());
    if (key->size() != seal::key_size) {
        auto* file = dynamic_cast<secrets::FileStorage*>(&storage_);
        throw wrong_size_root_key(*key, root_key_location(), file ? file->path_of(root_key_id_) : "");
    }
    warn_if_readable_by_others();
    return std::move(*key);
}

void NativeProvider::install_root_key(const SecretBytes& root_key) {
    if (root_key.size() != seal::key_size)
        fail(ExitCode::internal, "refusing to install a {}-byte root key at {}", root_key.size(), root_key_location());
    storage_.set(root_key_id_, root_key);
}

void NativeProvider::create_root_key() {
    if (root_key_exists()) fail(ExitCode::refused, "root key {} already exists; not replacing it", root_key_location());
    install_root_key(crypto::random_key(seal::key_size));
}

Bytes NativeProvider::wrap(const SecretBytes& db_key) {
    // The root key id inside the payload is empty for a native wrap (docs/infra-format.md §5); the row carries it.
    std::string sealed = seal::seal(root_key(), db_key, root_key_key_id(), "");
    return Bytes(sealed.begin(), sealed.end());
}

std::optional<SecretBytes> NativeProvider::try_unwrap(ByteView wrapped) {
    seal::Opener opener(root_key(), root_key_key_id());
    if (opener.open(as_text(wrapped)) != seal::Failure::none) return std::nullopt;
    return opener.plaintext();
}

SecretBytes NativeProvider::unwrap(ByteView wrapped) {
    seal::Opener opener(root_key(), root_key_key_id());
    seal::Failure failure = opener.open(as_text(wrapped));
    if (failure == seal::Failure::malformed)
        fail(ExitCode::database, "encryption_keys dbkey row: encrypted is not a sealed Infra payload ({} bytes)",
             wrapped.size());
    if (failure != seal::Failure::none)
        throw Error(ExitCode::wrong_key,
                    fmt::format("root key {} does not unwrap the db key ({})", root_key_location(),
                                seal::describe(failure)),
                    storage_.wrong_key_hint(root_key_id_));
    return opener.plaintext();
}

DbKey NativeProvider::generate_db_key() {
    DbKey key;
    key.plaintext = crypto::random_key(seal::key_size);
    key.wrapped = wrap(key.plaintext);
    return key;
}

std::unique_ptr<NativeProvider> make_native(const config::Config& cfg, const config::KeyProvider& entry,
                                            secrets::SecretStorages& storages) {
    // secretProvider may sit beside kind or under config:; the loader merged both into options.
    std::string storage = entry.get("secretprovider", "file");
    return std::make_unique<NativeProvider>(storages.named(storage), cfg.db_encryption_key);
}

std::unique_ptr<NativeProvider> make_native_file(const std::string& path) {
    config::SecretStorage plain_file{"file", "file", {}, 0};
    return std::make_unique<NativeProvider>(secrets::make_file_storage(plain_file), files::absolute(path));
}

std::unique_ptr<NativeProvider> make_native_in_memory(const SecretBytes& root_key) {
    return std::make_unique<NativeProvider>(std::make_unique<MemoryStorage>(root_key), "");
}

}  // namespace ik::providers
