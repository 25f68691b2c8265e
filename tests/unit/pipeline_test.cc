// The stage step of the key-change pipeline (ops/pipeline.h): what it wrote, undone on failure.
#include <doctest/doctest.h>

#include <map>

#include "ops/pipeline.h"
#include "secrets/secret_store.h"
#include "util/error.h"

using namespace ik;

namespace {

SecretBytes key_of(uint8_t fill) { return SecretBytes(32, fill); }

// Secrets in a map, as a Kubernetes Secret's data keys are to the slots.
class MapStorage : public secrets::SecretStorage {
public:
    std::map<std::string, SecretBytes> values;
    bool fail_writes = false;
    std::string kind() const override { return "map"; }
    std::optional<SecretBytes> get(const std::string& name) override {
        auto it = values.find(name);
        return it == values.end() ? std::nullopt : std::optional(it->second);
    }
    void set(const std::string& name, const SecretBytes& value) override {
        if (fail_writes) fail(ExitCode::provider, "cannot write {}", name);
        values[name] = value;
    }
    void remove(const std::string& name) override {
        if (fail_writes) fail(ExitCode::provider, "cannot delete {}", name);
        values.erase(name);
    }
    std::string describe(const std::string& name) const override { return "map " + name; }
};

}  // namespace

TEST_CASE("undo removes created slots and restores replaced ones, and the message says so") {
    MapStorage storage;
    storage.values["K"] = key_of(1);
    ops::KeySlots slots(storage, "K");
    ops::StagedKeys staged(slots);
    staged.create("K.new", key_of(2));
    staged.create("K.old", key_of(1));
    staged.replace("K", key_of(3));
    Error e = staged.undo(Error(ExitCode::database, "the commit failed"));
    CHECK(e.code() == ExitCode::database);
    CHECK(std::string(e.what()).find("the commit failed; undone: restored map K, removed map K.old, removed map K.new") == 0);
    CHECK(storage.values == std::map<std::string, SecretBytes>{{"K", key_of(1)}});
}

TEST_CASE("nothing is undone once the change is kept") {
    MapStorage storage;
    ops::KeySlots slots(storage, "K");
    ops::StagedKeys staged(slots);
    staged.create("K.new", key_of(2));
    staged.keep();
    Error e = staged.undo(Error(ExitCode::refused, "later trouble"));
    CHECK(std::string(e.what()) == "later trouble");
    CHECK(storage.values.count("K.new") == 1);
}

TEST_CASE("an undo that fails too names what is left and the command that clears it") {
    MapStorage storage;
    ops::KeySlots slots(storage, "K");
    ops::StagedKeys staged(slots);
    staged.create("K.new", key_of(2));
    storage.fail_writes = true;
    Error e = staged.undo(Error(ExitCode::database, "the commit failed"));
    CHECK(e.code() == ExitCode::database);
    CHECK(std::string(e.what()).find("left behind: map K.new") != std::string::npos);
    CHECK(e.hint().find("rotate-root --abort") != std::string::npos);
}

TEST_CASE("values that would block a key change refuse it with exit 1, naming the first") {
    ops::RekeyPlan plan;
    plan.blocking.push_back({"providers", "client_secret", "3", "authentication", "authentication failed"});
    plan.blocking.push_back({"settings", "private_jwk", "1", "malformed", "not base64"});
    try {
        ops::refuse_blocking_values(plan, "sqlite /x.db");
        FAIL("not refused");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::problems);
        CHECK(std::string(e.what()).find("providers.client_secret row 3 in sqlite /x.db") == 0);
        CHECK(std::string(e.what()).find("and 1 more") != std::string::npos);
    }
    plan.blocking_count = 2500;  // more than a census names
    try {
        ops::refuse_blocking_values(plan, "sqlite /x.db");
        FAIL("not refused");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("and 2499 more") != std::string::npos);
    }
    CHECK_NOTHROW(ops::refuse_blocking_values(ops::RekeyPlan{}, "sqlite /x.db"));
}
