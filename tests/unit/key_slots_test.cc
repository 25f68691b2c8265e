// The slots of a native root key rotation (ops/key_slots.h) over key files and over a storage
// without files, which is what the Kubernetes storage is to them; and the lock a key change takes.
#include <filesystem>
#include <map>

#include <unistd.h>

#include <doctest/doctest.h>

#include "ops/key_slots.h"
#include "ops/rekey.h"
#include "store/key_store.h"
#include "secrets/builtin.h"
#include "util/error.h"
#include "temp_dir.h"

using namespace ik;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

SecretBytes key_of(uint8_t fill) { return SecretBytes(32, fill); }

// Secrets in a map: no files, no atomic rename — SecretStorage's defaults do create and rename.
class MapStorage : public secrets::SecretStorage {
public:
    std::map<std::string, SecretBytes> values;
    std::string kind() const override { return "map"; }
    std::optional<SecretBytes> get(const std::string& name) override {
        auto it = values.find(name);
        return it == values.end() ? std::nullopt : std::optional(it->second);
    }
    void set(const std::string& name, const SecretBytes& value) override { values[name] = value; }
    void remove(const std::string& name) override { values.erase(name); }
    std::vector<std::string> names_with_prefix(const std::string& prefix) override {
        std::vector<std::string> out;
        for (const auto& [name, value] : values)
            if (name.rfind(prefix, 0) == 0) out.push_back(name);
        return out;
    }
    std::string describe(const std::string& name) const override { return "map " + name; }
};

secrets::FileStorage plain_files() { return secrets::FileStorage(config::SecretStorage{"file", "file", {}, 0}); }

}  // namespace

TEST_CASE("retained key files are listed newest first, without the new key, temp files or other files") {
    TempDir dir;
    std::string key = dir.file("root.key", "x");
    dir.file("root.key.20240101T000000.000000Z.retired", "x");
    dir.file("root.key.20250101T000000.000000Z.retired", "x");
    dir.file("root.key.new", "x");
    dir.file("root.key.new.tmp-0badf00d", "x");
    dir.file("root.key.replaced-20240101T000000Z", "x");
    dir.file("other.key.20260101T000000.000000Z.retired", "x");
    auto files = plain_files();
    ops::KeySlots slots(files, key);
    CHECK(slots.retained() == std::vector<std::string>{key + ".20250101T000000.000000Z.retired",
                                                      key + ".20240101T000000.000000Z.retired"});
    CHECK(slots.lock_directory() == dir.path.string());
}

TEST_CASE("stale temp files of a killed key write are removed and nothing else is") {
    TempDir dir;
    std::string key = dir.file("root.key", "x");
    std::string temp = dir.file("root.key.new.tmp-0badf00d", "x");
    std::string next = dir.file("root.key.new", "x");
    auto files = plain_files();
    ops::KeySlots(files, key).remove_stale_temp_files();
    CHECK_FALSE(fs::exists(temp));
    CHECK(fs::exists(next));
    CHECK(fs::exists(key));
}

TEST_CASE("a key that is a symlink: the temp files a killed write left beside its target are found and removed") {
    TempDir dir;
    fs::create_directory(dir.path / "real");
    std::string target = dir.file("real/root.key", "x");
    std::string beside_target = dir.file("real/root.key.tmp-0badf00d", "x");
    std::string not_ours = dir.file("real/root.key.tmp-0badf00d.keep", "x");
    std::string key = (dir.path / "root.key").string();
    fs::create_symlink(target, key);
    auto files = plain_files();
    ops::KeySlots slots(files, key);
    CHECK(slots.stale_temp_files() == std::vector<std::string>{"file " + beside_target});
    CHECK(slots.remove_stale_temp_files() == std::vector<std::string>{"file " + beside_target});
    CHECK_FALSE(fs::exists(beside_target));
    CHECK(fs::exists(not_ours));
    CHECK(fs::exists(target));
    CHECK(slots.stale_temp_files().empty());
}

TEST_CASE("installing a new key file renames it over the key, which then holds the new key") {
    TempDir dir;
    std::string key = dir.path / "root.key";
    auto files = plain_files();
    ops::KeySlots slots(files, key);
    slots.create(key, key_of(1));
    slots.create(slots.next(), key_of(2));
    auto mode = fs::status(slots.next()).permissions();
    slots.install_next();
    CHECK(slots.read(key) == key_of(2));
    CHECK_FALSE(slots.holds(slots.next()));
    CHECK(fs::status(key).permissions() == mode);
}

TEST_CASE("a slot that holds a key cannot be created again") {
    MapStorage map;
    ops::KeySlots slots(map, "infra-x/__root_key");
    slots.create(slots.next(), key_of(1));
    try {
        slots.create(slots.next(), key_of(2));
        FAIL("created twice");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::refused);
        CHECK(std::string(e.what()) == "map infra-x/__root_key.new already exists; not replacing it");
    }
    CHECK(slots.read(slots.next()) == key_of(1));
}

TEST_CASE("slots in a storage without files: retained keys are its names, install moves the value, no lock") {
    MapStorage map;
    ops::KeySlots slots(map, "infra-x/__root_key");
    map.values = {{"infra-x/__root_key", key_of(1)},
                  {"infra-x/__root_key.new", key_of(2)},
                  {slots.retired("20240101T000000.000000Z"), key_of(0)}};
    CHECK(slots.retained() == std::vector<std::string>{"infra-x/__root_key.20240101T000000.000000Z.retired"});
    CHECK_FALSE(slots.lock_directory().has_value());
    slots.install_next();
    CHECK(map.values.at("infra-x/__root_key") == key_of(2));
    CHECK(map.values.count("infra-x/__root_key.new") == 0);
}

TEST_CASE("the native provider of a slot wraps with that slot's key") {
    MapStorage map;
    ops::KeySlots slots(map, "infra-x/__root_key");
    map.values = {{"infra-x/__root_key", key_of(1)}, {"infra-x/__root_key.new", key_of(2)}};
    SecretBytes db_key = key_of(9);
    Bytes wrapped = slots.provider(slots.next())->wrap(db_key);
    CHECK(slots.provider(slots.next())->unwrap(wrapped) == db_key);
    CHECK_THROWS_AS(slots.provider(slots.key())->unwrap(wrapped), Error);
    CHECK(slots.provider(slots.key())->root_key_id() == "infra-x/__root_key");
}

TEST_CASE("utc stamps sort by time and fit in file names and Secret data keys") {
    std::string a = ops::utc_stamp();
    ::usleep(2000);
    std::string b = ops::utc_stamp();
    CHECK(a < b);
    CHECK(a.size() == std::string("20261129T071516.123456Z").size());
    CHECK(a.find_first_not_of("0123456789TZ.") == std::string::npos);
}

// --- the database lock every key change takes first (ops/rekey.h) ------------------------------

namespace {

store::KeyRow db_key_row(const std::string& wrapped) {
    store::KeyRow row;
    row.id = 7;
    row.key_id = 8;
    row.name = "dbkey";
    row.encrypted = Bytes(wrapped.begin(), wrapped.end());
    row.algorithm = "aesgcm";
    row.created_at = row.updated_at = store::now_timestamp();
    return row;
}

// A SQLite installation whose dbkey row holds `wrapped`.
std::unique_ptr<store::KeyStore> sqlite_with_row(const TempDir& dir, const std::string& wrapped) {
    auto store = store::open_sqlite((dir.path / "sqlite3.db").string(), true);
    store->create_key_table();
    auto tx = store->begin_exclusive();
    tx->insert_key(db_key_row(wrapped));
    tx->commit();
    return store;
}

}  // namespace

TEST_CASE("a key change holds the database lock, so a second one is refused before it writes a key") {
    TempDir dir;
    auto first = sqlite_with_row(dir, "wrapped-1");
    auto second = store::open_sqlite((dir.path / "sqlite3.db").string(), false);
    ops::KeyChange change = ops::begin_key_change(*first, db_key_row("wrapped-1"));
    try {
        ops::begin_key_change(*second, db_key_row("wrapped-1"));
        FAIL("a second key change began");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::refused);
    }
}

TEST_CASE("a key change refuses a dbkey row that changed since the caller unwrapped it") {
    TempDir dir;
    auto store = sqlite_with_row(dir, "wrapped-2");
    try {
        ops::begin_key_change(*store, db_key_row("wrapped-1"));
        FAIL("began on a stale row");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::refused);
        CHECK(std::string(e.what()).find("changed while infra-keys worked; nothing written") != std::string::npos);
    }
}
