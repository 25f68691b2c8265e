#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "util/nearest.h"
#include "util/text.h"

using namespace ik;

TEST_CASE("valid_utf8 accepts well-formed UTF-8 and nothing else") {
    CHECK(valid_utf8(""));
    CHECK(valid_utf8("/root/.infra/key"));
    CHECK(valid_utf8("/srv/clés/\xe2\x82\xac/\xf0\x9f\x94\x91"));  // é, €, 🔑
    CHECK_FALSE(valid_utf8("dir\xff"));                            // never a UTF-8 byte
    CHECK_FALSE(valid_utf8("\xc3"));                               // cut short
    CHECK_FALSE(valid_utf8("\xc0\xaf"));                           // overlong '/'
    CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));                       // overlong, three bytes
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));                       // a surrogate
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));                   // past U+10FFFF
    CHECK_FALSE(valid_utf8("\x80"));                               // a lone continuation byte
}

TEST_CASE("printable keeps UTF-8 text and shows every other byte as \\xNN") {
    CHECK(printable("/srv/clés") == "/srv/clés");
    CHECK(printable("dir\xff/key") == "dir\\xff/key");
    CHECK(printable("a\nb\tc") == "a\\x0ab\\x09c");
    CHECK(printable("back\\slash") == "back\\x5cslash");
}

TEST_CASE("nearest suggests the option one typo away, whatever the case, and nothing for a far word") {
    const std::vector<std::string> options = {"dbHost", "dbEncryptionKey", "dbEncryptionKeyProvider", "keys"};
    CHECK(nearest("dbhots", options) == "dbHost");                          // two neighbours swapped
    CHECK(nearest("DBENCRPYTIONKEY", options) == "dbEncryptionKey");        // swapped, any case
    CHECK(nearest("dbEncryptionKeyProvder", options) == "dbEncryptionKeyProvider");  // one left out
    CHECK(nearest("key", options) == "keys");
    CHECK(nearest("tls", options) == std::nullopt);
    CHECK(nearest(std::string(5000, 'k'), options) == std::nullopt);        // skipped by its length alone
    CHECK(nearest("", options) == std::nullopt);
}

TEST_CASE("natural_less puts row labels of integer keys and ctids in key order") {
    CHECK(natural_less("9", "10"));
    CHECK_FALSE(natural_less("10", "9"));
    CHECK(natural_less("id=2", "id=11"));
    CHECK(natural_less("identity_id=3,provider_id=20", "identity_id=3,provider_id=100"));
    CHECK(natural_less("identity_id=3,provider_id=100", "identity_id=12,provider_id=1"));
    CHECK(natural_less("(2,7)", "(10,1)"));
    CHECK(natural_less("(10,1)", "(10,2)"));
    CHECK(natural_less("abc", "abd"));
    CHECK(natural_less("ab", "abc"));
    CHECK(natural_less("a9", "ab"));     // a digit is still its byte against a letter
    CHECK(natural_less("007", "08"));    // by value
    CHECK(natural_less("07", "007") != natural_less("007", "07"));  // a strict order even so
    CHECK_FALSE(natural_less("42", "42"));
    CHECK_FALSE(natural_less("", ""));
    CHECK(natural_less("", "0"));
    std::vector<std::string> labels = {"100", "(0,3)", "20", "3", "NULL", "(0,12)", "99999999999999999999", "1"};
    std::sort(labels.begin(), labels.end(), [](const auto& a, const auto& b) { return natural_less(a, b); });
    CHECK(labels == std::vector<std::string>{"(0,3)", "(0,12)", "1", "3", "20", "100", "99999999999999999999", "NULL"});
}
