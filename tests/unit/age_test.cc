// The age v1 implementation: every vector of the C2SP CCTV age suite (tests/vectors/age), and
// round trips through each recipient type.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <botan/compression.h>
#include <botan/hash.h>
#include <botan/hex.h>
#include <doctest/doctest.h>

#include "crypto/age.h"

using namespace ik;

namespace {

// One CCTV test file: "key: value" lines, an empty line, then the (maybe zlib-compressed) age file.
struct Vector {
    std::string name;
    std::multimap<std::string, std::string> fields;
    std::string file;

    std::string field(const std::string& key) const {
        auto it = fields.find(key);
        return it == fields.end() ? "" : it->second;
    }
};

std::string read_all(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

std::string inflate(std::string_view compressed) {
    std::unique_ptr<Botan::Decompression_Algorithm> zlib(Botan::make_decompressor("zlib"));
    REQUIRE(zlib != nullptr);
    zlib->start();
    Botan::secure_vector<uint8_t> buffer(compressed.begin(), compressed.end());
    zlib->finish(buffer);
    return std::string(buffer.begin(), buffer.end());
}

Vector load(const std::filesystem::path& path) {
    std::string text = read_all(path);
    Vector v{path.filename().string(), {}, {}};
    size_t offset = 0;
    while (true) {
        size_t end = text.find('\n', offset);
        REQUIRE(end != std::string::npos);
        std::string line = text.substr(offset, end - offset);
        offset = end + 1;
        if (line.empty()) break;
        size_t colon = line.find(": ");
        REQUIRE(colon != std::string::npos);
        v.fields.emplace(line.substr(0, colon), line.substr(colon + 2));
    }
    v.file = text.substr(offset);
    if (v.field("compressed") == "zlib") v.file = inflate(v.file);
    return v;
}

std::filesystem::path vectors_dir() {
    const char* root = std::getenv("INFRA_KEYS_VECTORS");
    return std::filesystem::path(root ? root : "tests/vectors") / "age" / "testdata";
}

std::string expect_of(age::Failure failure) {
    switch (failure) {
        case age::Failure::armor: return "armor failure";
        case age::Failure::header: return "header failure";
        case age::Failure::no_match: return "no match";
        case age::Failure::hmac: return "HMAC failure";
        case age::Failure::payload: return "payload failure";
    }
    return "?";
}

// Hybrid (ML-KEM-768 + X25519) identities need post-quantum primitives Botan 2 does not have.
bool needs_post_quantum(const Vector& v) {
    auto [first, last] = v.fields.equal_range("identity");
    for (auto it = first; it != last; ++it)
        if (it->second.starts_with("AGE-SECRET-KEY-PQ-")) return true;
    return false;
}

struct Outcome {
    std::string result;          // "success" or a failure class
    std::string message;
    std::string payload_sha256;  // of whatever plaintext was released
};

Outcome run(const Vector& v) {
    std::vector<std::unique_ptr<age::Identity>> owned;
    auto [first, last] = v.fields.equal_range("identity");
    for (auto it = first; it != last; ++it)
        for (auto& identity : age::parse_identities(it->second, v.name)) owned.push_back(std::move(identity));
    auto [pfirst, plast] = v.fields.equal_range("passphrase");
    for (auto it = pfirst; it != plast; ++it)
        owned.push_back(age::passphrase_identity(SecretBytes(it->second.begin(), it->second.end())));
    std::vector<const age::Identity*> identities;
    for (const auto& identity : owned) identities.push_back(identity.get());

    auto hash = Botan::HashFunction::create_or_throw("SHA-256");
    Outcome outcome{"success", "", ""};
    try {
        std::string binary = v.field("armored") == "yes" ? age::dearmor(v.file) : v.file;
        age::decrypt(binary, identities, [&](ByteView chunk) { hash->update(chunk.data(), chunk.size()); });
    } catch (const age::FormatError& e) {
        outcome.result = expect_of(e.failure());
        outcome.message = e.what();
    }
    outcome.payload_sha256 = Botan::hex_encode(hash->final(), false);
    return outcome;
}

}  // namespace

TEST_CASE("every CCTV age vector gives its expected result") {
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(vectors_dir())) paths.push_back(entry.path());
    std::sort(paths.begin(), paths.end());
    REQUIRE(paths.size() == 143);

    size_t checked = 0, post_quantum = 0;
    for (const auto& path : paths) {
        Vector v = load(path);
        if (needs_post_quantum(v)) {
            ++post_quantum;
            continue;
        }
        CAPTURE(v.name);
        Outcome outcome = run(v);
        CAPTURE(outcome.message);
        CHECK(outcome.result == v.field("expect"));
        // Success and payload failures: exactly the plaintext released before the end or the error.
        if (v.fields.count("payload")) CHECK(outcome.payload_sha256 == v.field("payload"));
        ++checked;
    }
    // The hybrid vectors are the only ones left out; a new kind of vector must not be skipped silently.
    CHECK(post_quantum == 19);
    CHECK(checked == 124);
}

namespace {

SecretBytes secret(std::string_view text) { return SecretBytes(text.begin(), text.end()); }

std::string encrypt_to(const age::Recipient& recipient, std::string_view plaintext) {
    return age::encrypt({&recipient}, as_bytes(plaintext));
}

std::string decrypt_with(const age::Identity& identity, std::string_view file) {
    SecretBytes plain = age::decrypt(file, {&identity});
    return std::string(plain.begin(), plain.end());
}

template <typename F>
age::Failure failure_of(F&& action) {
    try {
        action();
    } catch (const age::FormatError& e) {
        return e.failure();
    }
    FAIL("did not throw an age::FormatError");
    return age::Failure::armor;
}

// An OpenSSH ed25519 key pair made by ssh-keygen (test data, never a real key).
constexpr std::string_view ssh_public =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK9SBFSjPQ12zM21SKWWECYDmT4/ZDscsmAwUFcael+V test@infra-keys";
constexpr std::string_view ssh_private = R"(-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCvUgRUoz0NdszNtUillhAmA5k+P2Q7HLJgMFBXGnpflQAAAJgaSNmDGkjZ
gwAAAAtzc2gtZWQyNTUxOQAAACCvUgRUoz0NdszNtUillhAmA5k+P2Q7HLJgMFBXGnpflQ
AAAECSuB4ndIfwNdC5cz06aG6K52HU93Bck0FqviPG6LmUtK9SBFSjPQ12zM21SKWWECYD
mT4/ZDscsmAwUFcael+VAAAAD3Rlc3RAaW5mcmEta2V5cwECAwQFBg==
-----END OPENSSH PRIVATE KEY-----
)";

}  // namespace

TEST_CASE("an X25519 file opens with its identity and with no other") {
    age::X25519KeyPair pair = age::generate_x25519(), other = age::generate_x25519();
    auto recipient = age::parse_recipient(pair.recipient);
    std::string file = encrypt_to(*recipient, "the db key");
    auto identity = age::parse_identities(as_text(pair.identity), "test");
    CHECK(decrypt_with(*identity[0], file) == "the db key");
    auto wrong = age::parse_identities(as_text(other.identity), "test");
    CHECK(failure_of([&] { decrypt_with(*wrong[0], file); }) == age::Failure::no_match);
}

TEST_CASE("a passphrase file opens only with the same passphrase") {
    auto recipient = age::passphrase_recipient(secret("correct horse battery"), 10);
    std::string file = encrypt_to(*recipient, "x");
    CHECK(file.find("-> scrypt ") != std::string::npos);
    CHECK(decrypt_with(*age::passphrase_identity(secret("correct horse battery")), file) == "x");
    CHECK(failure_of([&] { decrypt_with(*age::passphrase_identity(secret("wrong")), file); }) == age::Failure::no_match);
}

TEST_CASE("an ssh-ed25519 file opens with the OpenSSH private key") {
    auto recipient = age::parse_recipient(ssh_public);
    CHECK(recipient->describe().starts_with("ssh-ed25519 "));
    std::string file = encrypt_to(*recipient, std::string(200000, 'k'));  // several STREAM chunks
    auto identity = age::parse_identities(ssh_private, "id_ed25519");
    CHECK(decrypt_with(*identity[0], file) == std::string(200000, 'k'));
}

TEST_CASE("any one of several recipients opens the file") {
    age::X25519KeyPair a = age::generate_x25519(), b = age::generate_x25519();
    auto ra = age::parse_recipient(a.recipient);
    auto rb = age::parse_recipient(ssh_public);
    std::string file = age::encrypt({ra.get(), rb.get()}, as_bytes("shared"));
    CHECK(decrypt_with(*age::parse_identities(as_text(a.identity), "a")[0], file) == "shared");
    CHECK(decrypt_with(*age::parse_identities(ssh_private, "ssh")[0], file) == "shared");
    CHECK(failure_of([&] { decrypt_with(*age::parse_identities(as_text(b.identity), "b")[0], file); }) ==
          age::Failure::no_match);
}

TEST_CASE("a passphrase cannot share a file with other recipients") {
    auto pass = age::passphrase_recipient(secret("correct horse battery"), 10);
    auto x = age::parse_recipient(age::generate_x25519().recipient);
    CHECK_THROWS_AS(age::encrypt({pass.get(), x.get()}, as_bytes("x")), Error);
}

TEST_CASE("an empty plaintext is one empty final chunk, and a 64 KiB one is one full final chunk") {
    age::X25519KeyPair pair = age::generate_x25519();
    auto recipient = age::parse_recipient(pair.recipient);
    auto identity = age::parse_identities(as_text(pair.identity), "test");
    for (size_t size : {size_t{0}, size_t{65536}, size_t{65537}}) {
        std::string plain(size, 'p');
        CHECK(decrypt_with(*identity[0], encrypt_to(*recipient, plain)) == plain);
    }
}

TEST_CASE("recipients that are not age or ssh-ed25519 keys are refused with a usage error") {
    for (std::string_view bad : {"age1", "AGE1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS3290GQ",
                                 "ssh-rsa AAAAB3NzaC1yc2E", "ssh-ed25519 !!!", "hello"}) {
        CAPTURE(bad);
        try {
            age::parse_recipient(bad);
            FAIL("accepted");
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::usage);
        }
    }
}

TEST_CASE("bech32 round-trips and rejects mixed case and bad checksums") {
    Bytes data(32, 0x42);
    SecretBytes text = age::bech32_encode("age", data);
    std::string s(text.begin(), text.end());
    auto decoded = age::bech32_decode(s);
    REQUIRE(decoded);
    CHECK(decoded->hrp == "age");
    CHECK(Bytes(decoded->data.begin(), decoded->data.end()) == data);
    std::string flipped = s;
    flipped[10] = flipped[10] == 'q' ? 'p' : 'q';
    CHECK_FALSE(age::bech32_decode(flipped));
    std::string mixed = s;
    mixed[0] = 'A';
    CHECK_FALSE(age::bech32_decode(mixed));
}
