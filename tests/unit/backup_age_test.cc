// Backups as age files: the JSON document round-trips every key, and the reader also opens v1 files.
#include <doctest/doctest.h>

#include "crypto/backup_age.h"
#include "crypto/fingerprint.h"
#include "util/error.h"

using namespace ik;

namespace {

SecretBytes secret(std::string_view text) { return SecretBytes(text.begin(), text.end()); }

backup::Metadata sample_meta() {
    backup::Metadata m;
    m.created_at = "2026-12-02T12:00:00Z";
    m.tool_version = "0.2.0-test";
    m.provider_kind = "native";
    m.root_key_id = "/var/lib/infrahq/server/sqlite3.db.key";
    m.provider_settings = {{"secretProvider", "file"}};
    m.database = "sqlite:/var/lib/infrahq/server/sqlite3.db";
    m.db_key_id = "8b02aa11";
    m.db_key_sha256 = std::string(64, 'c');
    return m;
}

backup::Contents sample_contents() {
    backup::Contents c;
    c.root_key = SecretBytes(32, 0x5a);
    c.retained_keys.push_back({"/var/lib/infrahq/server/sqlite3.db.key.20261201T000000Z.retired", SecretBytes(32, 0x17)});
    c.db_key = SecretBytes(32, 0xd6);
    c.rows.push_back({1234567890123, 42, "dbkey", Bytes{'A', 'A', 0, 0xff}, "aesgcm", "/root/.infra/key",
                      "2022-06-09 14:03:11.123456789+00:00", "2022-06-09 14:03:11.123456789+00:00"});
    return c;
}

backup::Unlock with_passphrase(std::string_view text) {
    backup::Unlock unlock;
    unlock.passphrase = secret(text);
    return unlock;
}

}  // namespace

TEST_CASE("an age backup round-trips the db key, the root key, retained keys, rows and metadata") {
    auto recipient = age::passphrase_recipient(secret("correct horse battery"), 10);
    std::string file = backup::write_age(sample_meta(), sample_contents(), {recipient.get()});
    CHECK(file.starts_with("age-encryption.org/v1\n-> scrypt "));
    backup::Opened opened = backup::open_any(file, with_passphrase("correct horse battery"));
    CHECK(opened.meta.format == "age");
    CHECK(opened.meta.database == sample_meta().database);
    CHECK(opened.meta.provider_settings == sample_meta().provider_settings);
    CHECK(opened.meta.root_key_fingerprint == crypto::root_key_fingerprint(SecretBytes(32, 0x5a)));
    CHECK(*opened.contents.root_key == SecretBytes(32, 0x5a));
    CHECK(*opened.contents.db_key == SecretBytes(32, 0xd6));
    REQUIRE(opened.contents.retained_keys.size() == 1);
    CHECK(opened.contents.retained_keys[0].key == SecretBytes(32, 0x17));
    CHECK(opened.contents.rows == sample_contents().rows);
}

TEST_CASE("the document is JSON holding no key where it should not, and a fingerprint is not the key") {
    SecretBytes doc = backup::to_document(sample_meta(), sample_contents());
    std::string text(doc.begin(), doc.end());
    CHECK(text.find("\"format\": \"infra-keys backup\"") != std::string::npos);
    CHECK(text.find("\"format_version\": 2") != std::string::npos);
    std::string fingerprint = crypto::root_key_fingerprint(SecretBytes(32, 0x5a));
    CHECK(fingerprint.size() == 35);
    CHECK(fingerprint.find("5a5a") == std::string::npos);
    CHECK(crypto::root_key_fingerprint(SecretBytes(32, 0x5b)) != fingerprint);
}

TEST_CASE("an edited document is refused by name: fingerprint, newer version, wrong format") {
    auto edit = [](std::string_view from, std::string_view to) {
        SecretBytes doc = backup::to_document(sample_meta(), sample_contents());
        std::string text(doc.begin(), doc.end());
        size_t at = text.find(from);
        REQUIRE(at != std::string::npos);
        text.replace(at, from.size(), to);
        try {
            backup::from_document(SecretBytes(text.begin(), text.end()));
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::backup);
            return std::string(e.what());
        }
        FAIL("accepted");
        return std::string();
    };
    CHECK(edit("\"format_version\": 2", "\"format_version\": 3").find("newer") != std::string::npos);
    CHECK(edit("\"role\": \"retained\"", "\"role\": \"spare\"").find("root_keys[1].role") != std::string::npos);
    CHECK(edit("infra-keys backup", "something else").find("another format") != std::string::npos);
    CHECK(edit("\"key_id\": \"8b02aa11\"", "\"key_id\": 7").find("db_key.key_id") != std::string::npos);
}

TEST_CASE("a v1 file of infra-keys 0.1.0 opens through the same reader, and only with a passphrase") {
    backup::Header h;
    h.created_at = "2024-05-01T12:00:00Z";
    h.provider_kind = "native";
    h.root_key_id = "/k";
    h.db_key_id = "8b02aa11";
    h.db_key_sha256 = std::string(64, 'c');
    h.database = "sqlite:/db";
    h.kdf = {64, 1, 1};
    backup::Contents c;
    c.root_key = SecretBytes(32, 0x5a);
    std::string file = backup::write(h, c, secret("correct horse battery"));
    backup::Opened opened = backup::open_any(file, with_passphrase("correct horse battery"));
    CHECK(opened.meta.format == "infra-keys backup v1");
    CHECK(*opened.contents.root_key == SecretBytes(32, 0x5a));
    CHECK_FALSE(opened.contents.db_key.has_value());
    CHECK_THROWS_AS(backup::open_any(file, backup::Unlock{}), Error);
    CHECK(backup::inspect(file)[0].find("Argon2id") != std::string::npos);
}

TEST_CASE("inspect names each recipient without any secret") {
    auto x = age::parse_recipient(age::generate_x25519().recipient);
    auto ssh = age::parse_recipient("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK9SBFSjPQ12zM21SKWWECYDmT4/ZDscsmAwUFcael+V");
    std::string file = backup::write_age(sample_meta(), sample_contents(), {x.get(), ssh.get()});
    auto lines = backup::inspect(file);
    REQUIRE(lines.size() == 4);
    CHECK(lines[1].find("X25519") != std::string::npos);
    CHECK(lines[2].find("ssh-ed25519 key with tag") != std::string::npos);
    CHECK_THROWS_AS(backup::inspect("not a backup"), Error);
}

TEST_CASE("a writer with only public keys proves its file by the file key") {
    auto x = age::parse_recipient(age::generate_x25519().recipient);
    SecretBytes file_key;
    std::string file = backup::write_age(sample_meta(), sample_contents(), {x.get()}, &file_key);
    backup::Unlock unlock;
    unlock.identities.push_back(age::file_key_identity(file_key));
    CHECK(*backup::open_any(file, unlock).contents.db_key == SecretBytes(32, 0xd6));
    file[file.size() - 3] ^= 1;
    CHECK_THROWS_AS(backup::open_any(file, unlock), Error);
}
