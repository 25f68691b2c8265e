// Shared by the fuzz harnesses: what counts as a finding. A parser may refuse its input with
// ik::Error of a documented category; anything else that escapes (std::exception, an internal
// error) is what `main` turns into exit 70 "internal error", i.e. a bug.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

#include "util/error.h"

namespace ik::fuzz {

inline std::string_view text_of(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

template <typename F>
void expect_success_or_refusal(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        if (e.code() == ExitCode::internal) {
            std::fprintf(stderr, "fuzz: internal error: %s\n", e.what());
            std::abort();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz: uncaught %s\n", e.what());
        std::abort();
    }
}

// Aborts (a finding) when an invariant of the parser does not hold.
inline void require(bool holds, const char* what) {
    if (!holds) {
        std::fprintf(stderr, "fuzz: invariant broken: %s\n", what);
        std::abort();
    }
}

}  // namespace ik::fuzz
