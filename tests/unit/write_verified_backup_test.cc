// write_verified_backup: the reusable "save this key material to FILE and prove it" step.
#include <sys/stat.h>

#include <doctest/doctest.h>

#include "ops/backup.h"
#include "temp_dir.h"
#include "util/error.h"

using namespace ik;

namespace {

backup::Contents new_root_key_contents() {
    backup::Contents c;
    c.root_key = SecretBytes(32, 0x42);
    c.retained_keys.push_back({"old", SecretBytes(32, 0x17)});
    c.db_key = SecretBytes(32, 0xd6);
    c.rows.push_back({7, 1, "dbkey", Bytes{'w', 'r', 'a', 'p'}, "aesgcm", "/k", "then", "now"});
    return c;
}

backup::Metadata sample_meta() {
    backup::Metadata m;
    m.provider_kind = "native";
    m.root_key_id = "/k";
    m.database = "sqlite:/db";
    m.db_key_id = "01020304";
    m.db_key_sha256 = std::string(64, 'a');
    return m;
}

}  // namespace

TEST_CASE("write_verified_backup saves key material for public keys and proves the file on disk") {
    test::TempDir dir;
    std::string path = (dir.path / "new-root.backup").string();
    age::X25519KeyPair pair = age::generate_x25519();
    ops::BackupRecipients to;
    to.recipients.push_back(age::parse_recipient(pair.recipient));

    backup::Opened opened = ops::write_verified_backup(path, false, sample_meta(), new_root_key_contents(), to);
    CHECK(*opened.contents.root_key == SecretBytes(32, 0x42));
    CHECK(opened.contents.retained_keys == new_root_key_contents().retained_keys);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    // The private key opens it too, as a restore would.
    backup::Unlock unlock;
    unlock.identities = age::parse_identities(as_text(pair.identity), "identity");
    CHECK(*backup::open_any(ops::read_backup_file(path), unlock).contents.db_key == SecretBytes(32, 0xd6));
}

TEST_CASE("write_verified_backup never replaces a file without force, and re-opens a passphrase file with it") {
    test::TempDir dir;
    std::string path = dir.file("existing.backup", "keep me");
    ops::BackupRecipients to;
    to.passphrase = SecretBytes(20, 'p');
    to.recipients.push_back(age::passphrase_recipient(*to.passphrase, 10));
    try {
        ops::write_verified_backup(path, false, sample_meta(), new_root_key_contents(), to);
        FAIL("overwrote");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::refused);
    }
    CHECK(ops::read_backup_file(path) == "keep me");
    backup::Opened opened = ops::write_verified_backup(path, true, sample_meta(), new_root_key_contents(), to);
    CHECK(opened.meta.format == "age");
}
