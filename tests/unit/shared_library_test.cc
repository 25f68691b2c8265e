// SharedLibrary: libcurl and libpq are opened on first use, and their absence is a clear error.
#include <doctest/doctest.h>

#include <string>

#include "util/error.h"
#include "util/shared_library.h"

TEST_CASE("a missing library is an error of the given kind that names the package to install") {
    ik::SharedLibrary library("libinfra-keys-absent.so.1", "libinfra-keys-absent1", ik::ExitCode::database);
    try {
        library.symbol("anything");
        FAIL("opened a library that does not exist");
    } catch (const ik::Error& e) {
        CHECK(e.code() == ik::ExitCode::database);
        CHECK(std::string(e.what()).find("libinfra-keys-absent.so.1") != std::string::npos);
        CHECK(e.hint().find("libinfra-keys-absent1") != std::string::npos);
    }
}

TEST_CASE("a function is bound with its own type and called through it") {
    ik::SharedLibrary libm("libm.so.6", "libc6", ik::ExitCode::internal);
    double (*cosine)(double) = nullptr;
    libm.bind(cosine, "cos");
    REQUIRE(static_cast<bool>(cosine));
    CHECK(cosine(0.0) == 1.0);
}

TEST_CASE("a missing function names the library") {
    ik::SharedLibrary libm("libm.so.6", "libc6", ik::ExitCode::provider);
    try {
        libm.symbol("no_such_function_in_libm");
        FAIL("found a function that does not exist");
    } catch (const ik::Error& e) {
        CHECK(e.code() == ik::ExitCode::provider);
        CHECK(std::string(e.what()).find("libm.so.6") != std::string::npos);
    }
}
