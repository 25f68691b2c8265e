// For tests: the ik::Error an action throws.
#pragma once

#include <doctest/doctest.h>

#include "util/error.h"

namespace ik::test {

// Runs `action` and returns the ik::Error it throws (fails the test if none).
template <typename F>
Error error_of(F&& action) {
    try {
        action();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no ik::Error thrown");
    return Error(ExitCode::ok, "");
}

}  // namespace ik::test
