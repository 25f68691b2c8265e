// Telling the Infra release from its migrations, and what each release seals.
#include <doctest/doctest.h>

#include "ops/release.h"

using namespace ik;

namespace {

bool seals(const ops::Release& r, const char* table, const char* column) { return r.seals(table, column); }

}  // namespace

TEST_CASE("a database without known migrations has no release") {
    CHECK_FALSE(ops::detect_release(std::vector<std::string>{}));
    CHECK_FALSE(ops::detect_release(std::vector<std::string>{"SCHEMA_INIT", "201901010000"}));
}

TEST_CASE("the newest migration found names the release family") {
    CHECK(ops::detect_release({"202203231621"})->first == "v0.13.0");
    CHECK(ops::detect_release({"202203231621", "202206081027"})->first == "v0.13.2");
    // v0.14.3 squashed the oldest ids away: newer ids alone must do.
    CHECK(ops::detect_release({"2022-06-08T10:27-fixed", "2022-07-28T12:46", "2022-09-01T15:00"})->first == "v0.15.2");
    CHECK(ops::detect_release({"2022-11-21T11:00", "2022-11-15T10:00"})->first == "v0.18.1");
    CHECK(ops::detect_release({"2023-01-18T10:26"})->name() == "v0.21.0");
}

TEST_CASE("each release seals the columns its models mark EncryptedAtRest") {
    auto at = [](const char* id) { return *ops::detect_release({id}); };
    auto v13 = at("202203231621"), v14 = at("202207081217"), v16 = at("2022-09-22T11:00"), v17 = at("2022-11-01T16:39"),
         v181 = at("2022-11-21T11:00"), v20 = at("2022-11-25T14:46"), v21 = at("2023-01-05T17:33");
    CHECK(seals(v13, "root_certificates", "signed_cert"));
    CHECK_FALSE(seals(v13, "providers", "private_key"));
    CHECK_FALSE(seals(at("202206161733"), "root_certificates", "private_key"));
    CHECK(seals(v14, "providers", "private_key"));
    CHECK_FALSE(seals(v16, "device_flow_auth_requests", "access_key_token"));  // plaintext in v0.16.x
    CHECK(seals(v17, "device_flow_auth_requests", "access_key_token"));
    CHECK_FALSE(seals(v20, "device_flow_auth_requests", "access_key_token"));
    CHECK(seals(v20, "destination_credentials", "bearer_token"));
    CHECK(seals(v20, "settings", "private_jwk"));
    CHECK_FALSE(seals(v21, "settings", "private_jwk"));
    CHECK(seals(v21, "organizations", "private_jwk"));
    CHECK(v17.seals_empty_strings);
    CHECK_FALSE(v181.seals_empty_strings);
    CHECK(at("2022-08-30T11:45").has_sqlite);
    CHECK_FALSE(at("2022-09-01T15:00").has_sqlite);
    CHECK(v21.native_file_only);
    CHECK_FALSE(v20.native_file_only);
}
