// For tests: the ik::Error an action throws.
#pragma once

#include <doctest/doctest.h>

#include "util/error.h"

namespace ik::test {

// Runs `action` and returns the ik::Error it throws; fails the test if it throws nothing or
// something else.
template <typename F>
Error error_of(F&& action) {
    try {
        action();
    } catch (const Error& e) {
        return e;
    } catch (const std::exception& e) {
        FAIL("threw a non-ik::Error: " << e.what());
    }
    FAIL("no ik::Error thrown");
    return Error(ExitCode::ok, "");
}

}  // namespace ik::test
