// The passphrase-encrypted backup file: round trip, tamper and truncation resistance, clear errors.
#include <chrono>

#include <doctest/doctest.h>

#include "error_of.h"
#include "crypto/backup_file.h"
#include "crypto/random.h"
#include "crypto/seal.h"
#include "util/error.h"

using namespace ik;

namespace {

// Cheap KDF so tamper tests can run Argon2 hundreds of times.
constexpr backup::KdfParams fast_kdf{64, 1, 1};

SecretBytes passphrase(std::string_view text) { return SecretBytes(text.begin(), text.end()); }

backup::Header sample_header() {
    backup::Header h;
    h.created_at = "2024-05-01T12:00:00Z";
    h.tool_version = "0.1.0-test";
    h.provider_kind = "native";
    h.root_key_id = "/var/lib/infrahq/server/sqlite3.db.key";
    h.provider_settings = {{"secretProvider", "file"}};
    h.db_key_id = "8b02aa11";
    h.db_key_sha256 = std::string(64, 'c');
    h.database = "sqlite:/var/lib/infrahq/server/sqlite3.db";
    h.kdf = fast_kdf;
    return h;
}

backup::Contents sample_contents(bool with_root_key = true) {
    backup::Contents c;
    if (with_root_key) c.root_key = SecretBytes(32, 0x5a);
    c.rows.push_back({1234567890123, 42, "dbkey", Bytes{'A', 'A', 'A', 'A', 0, 0xff}, "aesgcm", "/root/.infra/key",
                      "2022-06-09 14:03:11.123456789+00:00", "2022-06-09 14:03:11.123456789+00:00"});
    c.rows.push_back({-7, 2147483647, "old", Bytes{}, "", "", "", ""});
    return c;
}

backup::Header header_of(std::string_view file) { return backup::read_header(file); }

using ik::test::error_of;

std::string message_of_open(std::string_view file, std::string_view pass = "correct horse") {
    Error e = error_of([&] { backup::open(file, passphrase(pass)); });
    CHECK(e.code() == ExitCode::backup);
    return e.what();
}

std::string replace_once(std::string text, std::string_view from, std::string_view to) {
    size_t at = text.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, "sample file lacks " << from);
    return text.replace(at, from.size(), to);
}

bool contains(std::string_view haystack, std::string_view needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("a backup round-trips the root key, every row and the header") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("correct horse"));
    backup::Header h;
    backup::Contents c = backup::open(file, passphrase("correct horse"), &h);
    REQUIRE(c.root_key.has_value());
    CHECK(*c.root_key == SecretBytes(32, 0x5a));
    CHECK(c.rows == sample_contents().rows);
    CHECK(h.contains_root_key);
    CHECK(h.provider_kind == "native");
    CHECK(h.root_key_id == "/var/lib/infrahq/server/sqlite3.db.key");
    CHECK(h.provider_settings == std::map<std::string, std::string>{{"secretProvider", "file"}});
    CHECK(h.db_key_id == "8b02aa11");
    CHECK(h.database == "sqlite:/var/lib/infrahq/server/sqlite3.db");
    CHECK(h.kdf == fast_kdf);
    CHECK(h.kdf_salt.size() == 16);
    CHECK(h.nonce.size() == 12);
}

TEST_CASE("a backup without a root key says so and restores no root key") {
    std::string file = backup::write(sample_header(), sample_contents(false), passphrase("pw"));
    CHECK_FALSE(header_of(file).contains_root_key);
    backup::Contents c = backup::open(file, passphrase("pw"));
    CHECK_FALSE(c.root_key.has_value());
    CHECK(c.rows.size() == 2);
}

TEST_CASE("a backup with no rows round-trips") {
    backup::Contents empty;
    std::string file = backup::write(sample_header(), empty, passphrase("pw"));
    CHECK(backup::open(file, passphrase("pw")).rows.empty());
}

TEST_CASE("the file starts with the magic line and a one-line JSON header, and holds no key bytes in the clear") {
    backup::Contents c = sample_contents();
    c.rows[0].encrypted = Bytes{'S', 'E', 'A', 'L', 'E', 'D', 'D', 'B', 'K', 'E', 'Y'};
    std::string file = backup::write(sample_header(), c, passphrase("pw"));
    CHECK(file.starts_with("infra-keys backup v1\n{\""));
    CHECK(std::count(file.begin(), file.end(), '\n') == 3);
    CHECK(file.back() == '\n');
    CHECK_FALSE(contains(file, "SEALEDDBKEY"));
    CHECK_FALSE(contains(file, "dbkey"));
}

TEST_CASE("two backups of the same contents use different salts and nonces") {
    std::string a = backup::write(sample_header(), sample_contents(), passphrase("pw"));
    std::string b = backup::write(sample_header(), sample_contents(), passphrase("pw"));
    CHECK(a != b);
    CHECK(header_of(a).kdf_salt != header_of(b).kdf_salt);
    CHECK(header_of(a).nonce != header_of(b).nonce);
}

TEST_CASE("write fills created_at and tool_version when the caller leaves them empty") {
    backup::Header h = sample_header();
    h.created_at.clear();
    h.tool_version.clear();
    backup::Header read = header_of(backup::write(h, sample_contents(), passphrase("pw")));
    CHECK(read.created_at.size() == 20);
    CHECK(read.created_at.back() == 'Z');
    CHECK_FALSE(read.tool_version.empty());
}

TEST_CASE("the header metadata is readable without the passphrase") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("secret"));
    backup::Header h = backup::read_header(file);
    CHECK(h.format_version == 1);
    CHECK(h.created_at == "2024-05-01T12:00:00Z");
    CHECK(h.tool_version == "0.1.0-test");
    CHECK(h.db_key_sha256 == std::string(64, 'c'));
    CHECK(h.contains_root_key);
    CHECK(h.kdf == fast_kdf);
}

TEST_CASE("the default KDF parameters are within the bounds a reader accepts") {
    backup::KdfParams d = backup::default_kdf();
    CHECK(d.memory_kib >= 8 * d.parallelism);
    CHECK(d.memory_kib <= backup::max_memory_kib);
    CHECK(d.iterations >= 1);
    CHECK(d.iterations <= backup::max_iterations);
    CHECK(d.parallelism >= 1);
    CHECK(d.parallelism <= backup::max_parallelism);
}

TEST_CASE("a wrong passphrase is refused with a clear message") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("correct horse"));
    CHECK(message_of_open(file, "correct horsf") ==
          "wrong passphrase or the backup was modified (authentication failed)");
    CHECK(contains(message_of_open(file, "x"), "authentication failed"));
}

TEST_CASE("an empty passphrase is refused when writing") {
    Error e = error_of([] { backup::write(sample_header(), sample_contents(), SecretBytes()); });
    CHECK(e.code() == ExitCode::usage);
}

TEST_CASE("every byte of a backup changed in turn is rejected") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("correct horse"));
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0x20}}) {
        for (size_t i = 0; i < file.size(); ++i) {
            std::string changed = file;
            changed[i] = static_cast<char>(changed[i] ^ mask);
            CAPTURE(i);
            CAPTURE(int{mask});
            Error e = error_of([&] { backup::open(changed, passphrase("correct horse")); });
            CHECK(e.code() == ExitCode::backup);
        }
    }
}

TEST_CASE("a backup truncated at every offset is rejected") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("pw"));
    size_t header_end = file.find('\n', file.find('\n') + 1) + 1;
    for (size_t cut = 0; cut < file.size(); ++cut) {
        CAPTURE(cut);
        std::string_view truncated = std::string_view(file).substr(0, cut);
        Error e = error_of([&] { backup::open(truncated, passphrase("pw")); });
        CHECK(e.code() == ExitCode::backup);
        // Past the header the reader knows the payload size, so it can say exactly what happened.
        if (cut >= header_end) CHECK(std::string(e.what()) == "backup is truncated");
        CHECK(error_of([&] { backup::read_header(truncated); }).code() == ExitCode::backup);
    }
}

TEST_CASE("data appended after the payload is rejected") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("pw"));
    CHECK(contains(message_of_open(file + "x", "pw"), "unexpected data after the payload"));
    CHECK(contains(message_of_open(file + "\n", "pw"), "unexpected data after the payload"));
}

TEST_CASE("files of another format are not mistaken for a backup") {
    CHECK(message_of_open("") == "not an infra-keys backup (empty file)");
    CHECK(message_of_open("hello world\n") == "not an infra-keys backup (bad magic)");
    CHECK(message_of_open("SQLite format 3\0", "x") == "not an infra-keys backup (bad magic)");
    CHECK(message_of_open("infra-keys backup vX\n{}\n") == "not an infra-keys backup (bad magic)");
    CHECK(message_of_open("infra-keys backup v0\n{}\n") == "not an infra-keys backup (bad magic)");
    CHECK(message_of_open("infra-keys backup v\n{}\n") == "not an infra-keys backup (bad magic)");
    Bytes noise = crypto::random_bytes(4096);
    noise[0] = 'x';
    CHECK(contains(message_of_open(as_text(noise)), "not an infra-keys backup"));
}

TEST_CASE("a newer format version in the magic line gets a clear message") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("pw"));
    std::string newer = replace_once(file, "infra-keys backup v1\n", "infra-keys backup v2\n");
    CHECK(message_of_open(newer, "pw") == "backup format version 2 is newer than this infra-keys understands (max 1)");
    CHECK(error_of([&] { backup::read_header(newer); }).code() == ExitCode::backup);
    CHECK(message_of_open("infra-keys backup v17\nwhatever") ==
          "backup format version 17 is newer than this infra-keys understands (max 1)");
}

TEST_CASE("a newer format version in the header gets a clear message") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("pw"));
    std::string newer = replace_once(file, "\"format_version\":1", "\"format_version\":3");
    CHECK(message_of_open(newer, "pw") == "backup format version 3 is newer than this infra-keys understands (max 1)");
}

TEST_CASE("a malformed header names the field") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("pw"));
    CHECK(message_of_open(replace_once(file, "\"memory_kib\":64", "\"memory_kib\":\"64\""), "pw") ==
          "backup header field kdf.memory_kib is not a non-negative integer");
    CHECK(message_of_open(replace_once(file, "\"created_at\":", "\"created_on\":"), "pw") ==
          "backup header field created_at is missing");
    CHECK(contains(message_of_open(replace_once(file, "\"algorithm\":\"Argon2id\"", "\"algorithm\":\"scrypt\""), "pw"),
                   "kdf.algorithm"));
    CHECK(contains(message_of_open(replace_once(file, "\"algorithm\":\"AES-256/GCM\"", "\"algorithm\":\"AES-128/GCM\""), "pw"),
                   "cipher.algorithm"));
    CHECK(contains(message_of_open(replace_once(file, "\"nonce\":\"", "\"nonce\":\"AAAA"), "pw"), "cipher.nonce"));
    CHECK(contains(message_of_open(replace_once(file, "\"salt\":\"", "\"salt\":\"!"), "pw"), "kdf.salt"));
    CHECK(contains(message_of_open(replace_once(file, "\"key_id\":\"8b02aa11\"", "\"key_id\":\"8b02\""), "pw"),
                   "db_key.key_id"));
    CHECK(contains(message_of_open(replace_once(file, "\"contains_root_key\":true", "\"contains_root_key\":1"), "pw"),
                   "contains_root_key"));
    CHECK(message_of_open(replace_once(file, "{\"cipher\"", "[\"cipher\""), "pw") == "backup header (line 2) is not valid JSON");
}

TEST_CASE("absurd KDF parameters in a hostile header are refused before Argon2 runs") {
    std::string file = backup::write(sample_header(), sample_contents(), passphrase("pw"));
    struct Case {
        std::string_view from, to, field;
    };
    for (const Case& c : {Case{"\"memory_kib\":64", "\"memory_kib\":1099511627776", "kdf.memory_kib"},
                          Case{"\"memory_kib\":64", "\"memory_kib\":4194305", "kdf.memory_kib"},
                          Case{"\"memory_kib\":64", "\"memory_kib\":7", "kdf.memory_kib"},
                          Case{"\"iterations\":1", "\"iterations\":101", "kdf.iterations"},
                          Case{"\"iterations\":1", "\"iterations\":0", "kdf.iterations"},
                          Case{"\"parallelism\":1", "\"parallelism\":65", "kdf.parallelism"},
                          Case{"\"parallelism\":1", "\"parallelism\":0", "kdf.parallelism"},
                          Case{"\"memory_kib\":64", "\"memory_kib\":-1", "kdf.memory_kib"}}) {
        CAPTURE(c.to);
        auto start = std::chrono::steady_clock::now();
        std::string message = message_of_open(replace_once(file, c.from, c.to), "pw");
        CHECK(contains(message, c.field));
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
    }
}

TEST_CASE("write refuses KDF parameters a reader would refuse") {
    backup::Header h = sample_header();
    h.kdf.iterations = 1000;
    CHECK(error_of([&] { backup::write(h, sample_contents(), passphrase("pw")); }).code() == ExitCode::backup);
}

TEST_CASE("a backup written with the default KDF opens") {
    backup::Header h = sample_header();
    h.kdf = backup::default_kdf();
    std::string file = backup::write(h, sample_contents(), passphrase("pw"));
    CHECK(header_of(file).kdf == backup::default_kdf());
    CHECK(backup::open(file, passphrase("pw")).rows == sample_contents().rows);
}
