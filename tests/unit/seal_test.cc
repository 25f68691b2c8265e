// The Infra sealed-payload format against the server's own vectors, plus hostile input.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <botan/base64.h>
#include <botan/hex.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "crypto/seal.h"

using namespace ik;
using nlohmann::json;

namespace {

json load_vectors(const std::string& file) {
    const char* dir = std::getenv("INFRA_KEYS_VECTORS");
    REQUIRE_MESSAGE(dir != nullptr, "INFRA_KEYS_VECTORS is not set");
    std::ifstream in(std::string(dir) + "/" + file);
    REQUIRE_MESSAGE(in.good(), "cannot open vector file " << file);
    return json::parse(in);
}

Bytes hex(const std::string& text) { return Botan::hex_decode(text); }
SecretBytes secret_hex(const std::string& text) { return Botan::hex_decode_locked(text); }
std::string text_of(const SecretBytes& b) { return std::string(b.begin(), b.end()); }
std::string text_of(const Bytes& b) { return std::string(b.begin(), b.end()); }

// One vector from either file, in a single shape.
struct Vector {
    std::string name;
    std::string kind;  // wrap, field, seal-error
    SecretBytes key;
    seal::KeyId key_id;
    std::string payload_algorithm;
    std::optional<std::string> payload_root_key_id;
    Bytes plaintext;
    std::string sealed;
    std::optional<Bytes> nonce;
    bool ok = true;
    std::string error_contains;
};

seal::KeyId key_id_for(const std::string& kind, const std::string& key_encrypted) {
    return kind == "wrap" ? seal::key_id_of({}) : seal::key_id_of(as_bytes(key_encrypted));
}

std::vector<Vector> all_vectors() {
    std::vector<Vector> out;
    const json seal_file = load_vectors("infra-seal.json");
    for (const auto& v : seal_file["vectors"]) {
        Vector x;
        x.name = v["name"];
        x.kind = v["kind"];
        x.key = secret_hex(v["key_hex"]);
        x.key_id = key_id_for(x.kind, v["key_encrypted"]);
        x.payload_algorithm = v["algorithm"];
        x.payload_root_key_id = v["root_key_id"].get<std::string>();
        x.plaintext = hex(v["plaintext_hex"]);
        x.sealed = v["sealed"];
        x.ok = v["expect"] == "ok";
        x.error_contains = v.value("error_contains", "");
        out.push_back(std::move(x));
    }
    const json golden_file = load_vectors("infra-seal-golden.json");
    for (const auto& v : golden_file["vectors"]) {
        Vector x;
        x.name = v["name"];
        x.kind = v["group"];
        x.key = secret_hex(x.kind == "wrap" ? v["root_key_hex"] : v["db_key_hex"]);
        x.key_id = key_id_for(x.kind, v.value("db_key_encrypted", ""));
        x.payload_algorithm = v.value("payload_algorithm", "aesgcm");
        if (v.contains("payload_root_key_id")) x.payload_root_key_id = v["payload_root_key_id"].get<std::string>();
        x.plaintext = hex(v["plaintext_hex"]);
        x.sealed = v["sealed"];
        if (v.contains("nonce_hex")) x.nonce = hex(v["nonce_hex"]);
        x.ok = v["expect"] == "ok";
        x.error_contains = v.value("error_contains", "");
        out.push_back(std::move(x));
    }
    return out;
}

std::vector<Vector> ok_vectors() {
    std::vector<Vector> out;
    for (auto& v : all_vectors())
        if (v.ok && v.kind != "seal-error") out.push_back(std::move(v));
    return out;
}

// The server's error text says which check refused the value.
seal::Failure expected_failure(const Vector& v) {
    if (v.error_contains.find("wrong key") != std::string::npos) return seal::Failure::wrong_key;
    if (v.error_contains.find("authentication") != std::string::npos) return seal::Failure::authentication;
    return seal::Failure::malformed;
}

seal::Failure unseal_failure(const SecretBytes& key, std::string_view text, const seal::KeyId& id) {
    try {
        seal::unseal(key, text, id);
        return seal::Failure::none;
    } catch (const seal::UnsealError& e) {
        return e.failure;
    }
}

Bytes binary_of(const std::string& sealed) {
    auto b = seal::decode_base64(sealed);
    REQUIRE(b.has_value());
    return *b;
}

// A small valid field value to mutate in the hostile tests.
struct Sample {
    SecretBytes key = SecretBytes(32, 0x42);
    seal::KeyId id = seal::key_id_of(as_bytes("wrapped db key"));
    Bytes plaintext = Bytes{'s', 'e', 'c', 'r', 'e', 't'};
    std::string sealed = seal::seal(key, plaintext, id, "/root/.infra/sqlite3.db.key");
};

// Offsets of the four single-byte length fields in a sample's binary.
std::vector<size_t> short_length_offsets(const Bytes& binary) {
    size_t n = (size_t{binary[0]} << 24) | (size_t{binary[1]} << 16) | (size_t{binary[2]} << 8) | binary[3];
    std::vector<size_t> offsets;
    size_t at = 4 + n;
    for (int i = 0; i < 4; ++i) {
        offsets.push_back(at);
        at += 1 + binary[at];
    }
    REQUIRE(at == binary.size());
    return offsets;
}

}  // namespace

TEST_CASE("every ok vector unseals to its plaintext") {
    int checked = 0;
    for (const auto& v : ok_vectors()) {
        CAPTURE(v.name);
        CHECK(text_of(seal::unseal(v.key, v.sealed, v.key_id)) == text_of(v.plaintext));
        ++checked;
    }
    CHECK(checked >= 20);
}

TEST_CASE("parse reports the payload's algorithm, key id, root key id and nonce") {
    for (const auto& v : ok_vectors()) {
        CAPTURE(v.name);
        auto p = seal::parse(v.sealed);
        REQUIRE(p.has_value());
        CHECK(p->algorithm == v.payload_algorithm);
        CHECK(p->key_id == Bytes(v.key_id.begin(), v.key_id.end()));
        if (v.payload_root_key_id) CHECK(p->root_key_id == *v.payload_root_key_id);
        if (v.nonce) CHECK(p->nonce == *v.nonce);
        CHECK(p->nonce.size() == seal::nonce_size);
        CHECK(p->ciphertext.size() == v.plaintext.size() + seal::tag_size);
        CHECK(seal::format(*p) == v.sealed);
    }
}

TEST_CASE("seal with a fixed nonce reproduces the server's payload bit for bit") {
    int checked = 0;
    for (const auto& v : ok_vectors()) {
        if (!v.nonce) continue;
        CAPTURE(v.name);
        REQUIRE(v.payload_root_key_id.has_value());
        CHECK(seal::seal(v.key, v.plaintext, v.key_id, *v.payload_root_key_id, v.nonce) == v.sealed);
        ++checked;
    }
    CHECK(checked >= 10);
}

TEST_CASE("every error vector fails with the check the server failed on") {
    int checked = 0;
    for (const auto& v : all_vectors()) {
        if (v.ok || v.kind == "seal-error") continue;
        CAPTURE(v.name);
        CHECK(unseal_failure(v.key, v.sealed, v.key_id) == expected_failure(v));
        ++checked;
    }
    CHECK(checked == 7);
}

TEST_CASE("the error vectors map to wrong key, authentication and malformed as named") {
    for (const auto& v : all_vectors()) {
        if (v.ok || v.kind == "seal-error") continue;
        CAPTURE(v.name);
        seal::Failure f = unseal_failure(v.key, v.sealed, v.key_id);
        if (v.name.find("wrong db key") != std::string::npos) CHECK(f == seal::Failure::wrong_key);
        else if (v.name.find("flipped") != std::string::npos) CHECK(f == seal::Failure::authentication);
        else CHECK(f == seal::Failure::malformed);
    }
}

TEST_CASE("sealing with a key that is not 32 bytes is refused") {
    int checked = 0;
    for (const auto& v : all_vectors()) {
        if (v.kind != "seal-error") continue;
        CAPTURE(v.name);
        CHECK_THROWS_AS(seal::seal(v.key, v.plaintext, v.key_id, ""), std::invalid_argument);
        ++checked;
    }
    CHECK(checked == 1);
    seal::KeyId id = seal::key_id_of({});
    CHECK_THROWS_AS(seal::seal(SecretBytes(), Bytes{1}, id, ""), std::invalid_argument);
    CHECK_THROWS_AS(seal::seal(SecretBytes(33, 1), Bytes{1}, id, ""), std::invalid_argument);
    CHECK_THROWS_AS(seal::unseal(SecretBytes(31, 1), Sample().sealed, id), std::invalid_argument);
}

TEST_CASE("seal refuses a nonce that is not 12 bytes and a root key id over 255 bytes") {
    Sample s;
    CHECK_THROWS_AS(seal::seal(s.key, s.plaintext, s.id, "", Bytes(11)), std::invalid_argument);
    CHECK_THROWS_AS(seal::seal(s.key, s.plaintext, s.id, std::string(256, 'x')), std::invalid_argument);
    CHECK_NOTHROW(seal::seal(s.key, s.plaintext, s.id, std::string(255, 'x')));
}

TEST_CASE("seal draws a fresh nonce each time and the result unseals") {
    Sample s;
    std::string again = seal::seal(s.key, s.plaintext, s.id, "/root/.infra/sqlite3.db.key");
    CHECK(again != s.sealed);
    CHECK(text_of(seal::unseal(s.key, again, s.id)) == text_of(s.plaintext));
    CHECK(text_of(seal::unseal(s.key, s.sealed, s.id)) == text_of(s.plaintext));
}

TEST_CASE("one Sealer reproduces every server vector in turn and draws a fresh nonce per value") {
    // The vectors share no key, so a Sealer per key, each used for every vector of that key and
    // for one value with a random nonce after them: reuse must not carry anything over.
    int checked = 0;
    for (const auto& v : ok_vectors()) {
        if (!v.nonce) continue;
        CAPTURE(v.name);
        seal::Sealer sealer(v.key, v.key_id, *v.payload_root_key_id);
        std::string first = sealer.seal(v.plaintext);
        CHECK(sealer.seal(v.plaintext, v.nonce) == v.sealed);
        std::string again = sealer.seal(v.plaintext);
        CHECK(again != first);
        CHECK(text_of(seal::unseal(v.key, again, v.key_id)) == text_of(v.plaintext));
        if (!v.plaintext.empty()) CHECK(sealer.seal(ByteView(), v.nonce) != v.sealed);  // nothing carried over
        CHECK(sealer.seal(v.plaintext, v.nonce) == v.sealed);
        ++checked;
    }
    CHECK(checked >= 10);
}

TEST_CASE("the key id of the empty string is e3b0c442") {
    CHECK(seal::to_hex(seal::key_id_of({})) == "e3b0c442");
}

TEST_CASE("base64 matches Go's RawStdEncoding for every tail length") {
    for (size_t n = 0; n < 40; ++n) {
        Bytes data(n);
        for (size_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(i * 37 + 11);
        std::string padded = Botan::base64_encode(data);
        std::string raw = padded.substr(0, padded.find('='));
        CHECK(seal::encode_base64(data) == raw);
        auto back = seal::decode_base64(raw);
        REQUIRE(back.has_value());
        CHECK(*back == data);
    }
}

TEST_CASE("base64 decoding rejects padding, foreign characters and a dangling character") {
    CHECK_FALSE(seal::decode_base64("QQ==").has_value());
    CHECK_FALSE(seal::decode_base64("QUI=").has_value());
    CHECK_FALSE(seal::decode_base64("QUJD=").has_value());
    CHECK_FALSE(seal::decode_base64("QUJDR").has_value());
    CHECK_FALSE(seal::decode_base64("QU-D").has_value());
    CHECK_FALSE(seal::decode_base64("QU_D").has_value());
    CHECK_FALSE(seal::decode_base64("QU D").has_value());
    CHECK_FALSE(seal::decode_base64(std::string("QU\0D", 4)).has_value());
    CHECK_FALSE(seal::decode_base64("QU\xc3\xa9").has_value());
    CHECK(seal::decode_base64("").value().empty());
}

TEST_CASE("base64 decoding skips carriage returns and newlines as Go does") {
    auto plain = seal::decode_base64("QUJDREVG");
    auto broken = seal::decode_base64("QUJD\r\nREVG\n");
    REQUIRE(plain.has_value());
    REQUIRE(broken.has_value());
    CHECK(*plain == *broken);
    Sample s;
    std::string wrapped = s.sealed.substr(0, 10) + "\n" + s.sealed.substr(10) + "\r\n";
    CHECK(text_of(seal::unseal(s.key, wrapped, s.id)) == text_of(s.plaintext));
}

TEST_CASE("base64 decoding gives the same bytes with a line break or a foreign character at any position") {
    Bytes data;
    for (int i = 0; i < 40; ++i) data.push_back(static_cast<uint8_t>(i * 37));
    for (size_t size : {38, 39, 40}) {
        std::string raw = seal::encode_base64(ByteView(data).first(size));
        for (size_t at = 0; at <= raw.size(); ++at) {
            CAPTURE(size);
            CAPTURE(at);
            for (const char* brk : {"\n", "\r\n", "\n\n\r"})
                CHECK(seal::decode_base64(raw.substr(0, at) + brk + raw.substr(at)) == Bytes(data.begin(), data.begin() + size));
            CHECK_FALSE(seal::decode_base64(raw.substr(0, at) + "=" + raw.substr(at)).has_value());
            CHECK_FALSE(seal::decode_base64(raw.substr(0, at) + "-" + raw.substr(at)).has_value());
        }
    }
}

TEST_CASE("a payload truncated at any offset is malformed, never a crash") {
    for (const auto& v : ok_vectors()) {
        CAPTURE(v.name);
        Bytes binary = binary_of(v.sealed);
        seal::Opener opener(v.key, v.key_id);
        for (size_t cut = 0; cut < binary.size(); ++cut) {
            CAPTURE(cut);
            std::string truncated = seal::encode_base64(ByteView(binary).first(cut));
            CHECK(unseal_failure(v.key, truncated, v.key_id) == seal::Failure::malformed);
            CHECK(opener.open(truncated) == seal::Failure::malformed);
            CHECK_FALSE(seal::parse(truncated).has_value());
        }
    }
}

TEST_CASE("a ciphertext length of 0xFFFFFFFF is malformed") {
    Sample s;
    Bytes binary = binary_of(s.sealed);
    for (int i = 0; i < 4; ++i) binary[static_cast<size_t>(i)] = 0xff;
    CHECK(unseal_failure(s.key, seal::encode_base64(binary), s.id) == seal::Failure::malformed);
}

TEST_CASE("a ciphertext length one past or one short of the real one is refused") {
    Sample s;
    Bytes binary = binary_of(s.sealed);
    for (int delta : {-1, 1}) {
        Bytes changed = binary;
        changed[3] = static_cast<uint8_t>(changed[3] + delta);
        // Usually malformed; when the shifted bytes happen to parse (a tag byte of 7 makes the
        // algorithm field one longer) the tag check refuses it, as the server would.
        CHECK(unseal_failure(s.key, seal::encode_base64(changed), s.id) != seal::Failure::none);
    }
}

TEST_CASE("a length byte pointing past the end is malformed") {
    Sample s;
    Bytes binary = binary_of(s.sealed);
    for (size_t offset : short_length_offsets(binary)) {
        CAPTURE(offset);
        for (uint8_t value : {uint8_t{255}, static_cast<uint8_t>(binary.size() - offset)}) {
            Bytes changed = binary;
            changed[offset] = value;
            CHECK(unseal_failure(s.key, seal::encode_base64(changed), s.id) == seal::Failure::malformed);
        }
    }
}

TEST_CASE("bytes after the nonce are malformed") {
    Sample s;
    Bytes binary = binary_of(s.sealed);
    binary.push_back(0);
    CHECK(unseal_failure(s.key, seal::encode_base64(binary), s.id) == seal::Failure::malformed);
}

TEST_CASE("a nonce that is not 12 bytes is malformed") {
    Sample s;
    auto p = seal::parse(s.sealed).value();
    for (size_t size : {0, 8, 11, 13, 16}) {
        p.nonce.assign(size, 7);
        CHECK(unseal_failure(s.key, seal::format(p), s.id) == seal::Failure::malformed);
    }
}

TEST_CASE("a ciphertext shorter than the tag is malformed") {
    Sample s;
    auto p = seal::parse(s.sealed).value();
    p.ciphertext.resize(seal::tag_size - 1);
    CHECK(unseal_failure(s.key, seal::format(p), s.id) == seal::Failure::malformed);
}

TEST_CASE("a key id of another length is a wrong key") {
    Sample s;
    auto p = seal::parse(s.sealed).value();
    for (size_t size : {0, 3, 5}) {
        p.key_id.assign(s.id.begin(), s.id.end());
        p.key_id.resize(size, 0);
        CHECK(unseal_failure(s.key, seal::format(p), s.id) == seal::Failure::wrong_key);
    }
}

TEST_CASE("bad base64 characters anywhere in a payload are malformed") {
    Sample s;
    for (char bad : {'=', '-', '_', ' ', '.', '\t', '\0'}) {
        for (size_t at : {size_t{0}, s.sealed.size() / 2, s.sealed.size()}) {
            std::string text = s.sealed;
            text.insert(at, 1, bad);
            CAPTURE(at);
            CHECK(unseal_failure(s.key, text, s.id) == seal::Failure::malformed);
        }
    }
}

TEST_CASE("every flipped bit of a valid payload is refused without a crash") {
    Sample s;
    Bytes binary = binary_of(s.sealed);
    auto offsets = short_length_offsets(binary);
    size_t key_id_start = offsets[1] + 1;
    for (size_t i = 0; i < binary.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            Bytes changed = binary;
            changed[i] ^= static_cast<uint8_t>(1 << bit);
            seal::Failure f = unseal_failure(s.key, seal::encode_base64(changed), s.id);
            CAPTURE(i);
            // The algorithm and root key id are informational (not authenticated), as in the server.
            bool informational = (i > offsets[0] && i < offsets[1]) || (i > offsets[2] && i < offsets[3]);
            if (informational) CHECK(f == seal::Failure::none);
            else CHECK(f != seal::Failure::none);
            if (i >= key_id_start && i < key_id_start + 4) CHECK(f == seal::Failure::wrong_key);
        }
    }
}

TEST_CASE("with_key_id changes only the key id and the value unseals under the new id") {
    seal::KeyId new_id = seal::key_id_of(as_bytes("the re-wrapped db key"));
    for (const auto& v : ok_vectors()) {
        CAPTURE(v.name);
        std::string moved = seal::with_key_id(v.sealed, new_id);
        CHECK(text_of(seal::unseal(v.key, moved, new_id)) == text_of(v.plaintext));
        CHECK(unseal_failure(v.key, moved, v.key_id) == seal::Failure::wrong_key);

        Bytes before = binary_of(v.sealed);
        Bytes after = binary_of(moved);
        REQUIRE(before.size() == after.size());
        size_t differing = 0;
        for (size_t i = 0; i < before.size(); ++i) differing += before[i] != after[i];
        CHECK(differing <= 4);
        auto p_before = seal::parse(v.sealed).value();
        auto p_after = seal::parse(moved).value();
        CHECK(p_after.key_id == Bytes(new_id.begin(), new_id.end()));
        CHECK(p_after.ciphertext == p_before.ciphertext);
        CHECK(p_after.algorithm == p_before.algorithm);
        CHECK(p_after.root_key_id == p_before.root_key_id);
        CHECK(p_after.nonce == p_before.nonce);

        CHECK(seal::with_key_id(moved, v.key_id) == v.sealed);
    }
}

TEST_CASE("with_key_id repairs a key id of the wrong length and refuses a malformed value") {
    Sample s;
    auto p = seal::parse(s.sealed).value();
    p.key_id = Bytes{1, 2, 3};
    std::string repaired = seal::with_key_id(seal::format(p), s.id);
    CHECK(repaired == s.sealed);
    try {
        seal::with_key_id("QQ==", s.id);
        FAIL("with_key_id accepted a malformed value");
    } catch (const seal::UnsealError& e) {
        CHECK(e.failure == seal::Failure::malformed);
    }
    CHECK_THROWS_AS(seal::with_key_id("", s.id), seal::UnsealError);
}

TEST_CASE("KeyIdRewriter gives exactly with_key_id's text, reusing one buffer, and only for the old key id") {
    seal::KeyId new_id = seal::key_id_of(as_bytes("the re-wrapped db key"));
    std::optional<seal::KeyIdRewriter> rewriter;
    for (const auto& v : ok_vectors()) {
        CAPTURE(v.name);
        rewriter.emplace(v.key_id, new_id);
        auto moved = rewriter->rewrite(v.sealed);
        REQUIRE(moved.has_value());
        CHECK(*moved == seal::with_key_id(v.sealed, new_id));
        CHECK(text_of(seal::unseal(v.key, *moved, new_id)) == text_of(v.plaintext));
        CHECK_FALSE(rewriter->rewrite(*moved).has_value());  // carries new_id, not the old one
    }
    // Every alignment of the key id against the base64 groups, at every ciphertext length mod 3,
    // and a value with line breaks (which the decoder skips), long root key ids included.
    SecretBytes key(seal::key_size, 7);
    seal::KeyId old_id = seal::key_id_of(as_bytes("old"));
    seal::KeyIdRewriter many(old_id, new_id);
    for (size_t size = 0; size < 40; ++size)
        for (const std::string& root_key_id : std::vector<std::string>{"", "r", "root-key", std::string(200, 'k')}) {
            CAPTURE(size);
            std::string sealed = seal::seal(key, Bytes(size, 1), old_id, root_key_id);
            CHECK(many.rewrite(sealed) == seal::with_key_id(sealed, new_id));
            std::string wrapped = sealed.substr(0, 10) + "\r\n" + sealed.substr(10);
            CHECK(many.rewrite(wrapped) == seal::with_key_id(wrapped, new_id));
        }
    CHECK_FALSE(many.rewrite("QQ==").has_value());
    CHECK_FALSE(many.rewrite("").has_value());
    CHECK_FALSE(many.rewrite("not base64!").has_value());
}

TEST_CASE("the Opener gives the same results as unseal, in any order, reusing its buffers") {
    auto vectors = all_vectors();
    for (const auto& v : vectors) {
        if (v.kind == "seal-error") continue;
        CAPTURE(v.name);
        seal::Opener opener(v.key, v.key_id);
        // Interleave each vector with others so state left by a failure or a big value shows up.
        for (const auto& other : vectors) {
            if (other.kind == "seal-error") continue;
            for (const std::string* text : {&other.sealed, &v.sealed}) {
                seal::Failure expected = unseal_failure(v.key, *text, v.key_id);
                seal::Failure got = opener.open(*text);
                CHECK(got == expected);
                if (got == seal::Failure::none)
                    CHECK(text_of(opener.plaintext()) == text_of(seal::unseal(v.key, *text, v.key_id)));
                else
                    CHECK(opener.plaintext().empty());
            }
        }
    }
}

TEST_CASE("unseal errors name the failure and the key ids") {
    Sample s;
    seal::KeyId other = seal::key_id_of(as_bytes("another"));
    try {
        seal::unseal(s.key, s.sealed, other);
        FAIL("unseal accepted a wrong key id");
    } catch (const seal::UnsealError& e) {
        CHECK(e.failure == seal::Failure::wrong_key);
        CHECK(std::string(e.what()).find(seal::to_hex(s.id)) != std::string::npos);
        CHECK(std::string(e.what()).find(seal::to_hex(other)) != std::string::npos);
    }
    CHECK(seal::describe(seal::Failure::authentication) == "authentication failed");
    CHECK(seal::describe(seal::Failure::wrong_key) == "wrong key");
    CHECK(seal::describe(seal::Failure::malformed) == "malformed");
}

TEST_CASE("may_be_payload rules out plaintext but never a sealed value") {
    SecretBytes key(32, 7);
    seal::KeyId id{1, 2, 3, 4};
    for (size_t n : {0, 1, 100}) CHECK(seal::may_be_payload(seal::seal(key, Bytes(n, 'x'), id, "")));
    CHECK_FALSE(seal::may_be_payload(""));
    CHECK_FALSE(seal::may_be_payload("hunter2"));
    CHECK_FALSE(seal::may_be_payload("https://login.example.com/oauth2/v1/authorize?client_id=x"));
    CHECK_FALSE(seal::may_be_payload("AAAA"));
}

TEST_CASE("an opener reports the key id a value carries, even when it is another key's") {
    SecretBytes key(32, 7);
    seal::KeyId mine{1, 2, 3, 4}, other{9, 9, 9, 9};
    seal::Opener opener(key, mine);
    CHECK(opener.open(seal::seal(key, Bytes{'a'}, other, "")) == seal::Failure::wrong_key);
    CHECK(opener.found_key_id() == Bytes(other.begin(), other.end()));
    CHECK(opener.open("not*base64") == seal::Failure::malformed);
    CHECK(opener.found_key_id().empty());
}
