// How a key change carries each sealed value over to the new dbkey row (ops/rekey.h): a re-wrap
// rewrites the key id only; a new db key opens and seals every value again.
#include <doctest/doctest.h>

#include "crypto/random.h"
#include "crypto/seal.h"
#include "ops/rekey.h"

using namespace ik;

namespace {

const seal::KeyId old_id{0x01, 0x02, 0x03, 0x04};
const seal::KeyId new_id{0xa1, 0xb2, 0xc3, 0xd4};
const std::string root_key_id = "/etc/infra/root.key";

ops::OpenDbKey old_key() { return {store::KeyRow{}, crypto::random_key(seal::key_size), old_id}; }

Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }
SecretBytes secret_of(std::string_view text) { return SecretBytes(text.begin(), text.end()); }

}  // namespace

TEST_CASE("reseal opens each value with the old db key and seals it again under the new one") {
    ops::OpenDbKey from = old_key();
    SecretBytes to = crypto::random_key(seal::key_size);
    std::string stored = seal::seal(from.plaintext, bytes_of("client-secret-1"), old_id, "old root id");
    ops::ValueTransform transform = ops::reseal(from, to, new_id, root_key_id);

    auto resealed = transform(stored);
    REQUIRE(resealed);
    // The same plaintext, now under the new key and key id only.
    CHECK(seal::unseal(to, *resealed, new_id) == secret_of("client-secret-1"));
    CHECK_THROWS_AS(seal::unseal(from.plaintext, *resealed, new_id), seal::UnsealError);
    CHECK_THROWS_AS(seal::unseal(from.plaintext, *resealed, old_id), seal::UnsealError);
    // As the server seals: its algorithm, the new row's root key id, a fresh nonce.
    auto before = seal::parse(stored);
    auto after = seal::parse(*resealed);
    REQUIRE(before);
    REQUIRE(after);
    CHECK(after->algorithm == "aesgcm");
    CHECK(after->root_key_id == root_key_id);
    CHECK(after->key_id == Bytes(new_id.begin(), new_id.end()));
    CHECK(after->nonce.size() == seal::nonce_size);
    CHECK(after->nonce != before->nonce);
    // Twice the same value: two nonces, two texts (a nonce is never reused under the new key).
    auto again = transform(stored);
    REQUIRE(again);
    CHECK(*again != *resealed);
    CHECK(seal::parse(*again)->nonce != after->nonce);
}

TEST_CASE("reseal leaves alone what the old db key did not seal") {
    ops::OpenDbKey from = old_key();
    ops::ValueTransform transform = ops::reseal(from, crypto::random_key(seal::key_size), new_id, root_key_id);
    CHECK_FALSE(transform("plain text, not a payload"));
    // Another key id: another key's value.
    CHECK_FALSE(transform(seal::seal(crypto::random_key(seal::key_size), bytes_of("x"), new_id, "")));
    // The old key id, but it does not authenticate: never sealed again (that would hide the damage).
    CHECK_FALSE(transform(seal::seal(crypto::random_key(seal::key_size), bytes_of("x"), old_id, "")));
    // An empty string sealed (up to v0.18.0) is a value like any other.
    auto empty = transform(seal::seal(from.plaintext, Bytes{}, old_id, ""));
    REQUIRE(empty);
}

TEST_CASE("rekey_id rewrites only the key id of values under the old one") {
    SecretBytes key = crypto::random_key(seal::key_size);
    std::string stored = seal::seal(key, bytes_of("token"), old_id, root_key_id);
    ops::ValueTransform transform = ops::rekey_id(old_id, new_id);
    auto rekeyed = transform(stored);
    REQUIRE(rekeyed);
    CHECK(*rekeyed == seal::with_key_id(stored, new_id));
    CHECK(seal::unseal(key, *rekeyed, new_id) == seal::unseal(key, stored, old_id));
    CHECK_FALSE(transform(*rekeyed));
    CHECK_FALSE(transform("not sealed"));
}
