#include "util/text.h"

#include <fmt/format.h>

namespace ik {
namespace {

// Length of the well-formed UTF-8 sequence at `at`, or 0 (RFC 3629 §4).
size_t sequence_length(std::string_view text, size_t at) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
    unsigned char lead = byte(at);
    if (lead < 0x80) return 1;
    size_t length = lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (length == 0 || at + length > text.size()) return 0;
    unsigned char low = 0x80, high = 0xbf;  // the range of the second byte
    if (lead == 0xe0) low = 0xa0;           // overlong
    if (lead == 0xed) high = 0x9f;          // surrogates
    if (lead == 0xf0) low = 0x90;           // overlong
    if (lead == 0xf4) high = 0x8f;          // past U+10FFFF
    if (byte(at + 1) < low || byte(at + 1) > high) return 0;
    for (size_t i = 2; i < length; ++i)
        if (byte(at + i) < 0x80 || byte(at + i) > 0xbf) return 0;
    return length;
}

}  // namespace

bool valid_utf8(std::string_view text) {
    for (size_t at = 0; at < text.size();) {
        size_t length = sequence_length(text, at);
        if (length == 0) return false;
        at += length;
    }
    return true;
}

std::string printable(std::string_view text) {
    std::string out;
    for (size_t at = 0; at < text.size();) {
        size_t length = sequence_length(text, at);
        auto c = static_cast<unsigned char>(text[at]);
        if (length > 1 || (length == 1 && c >= 0x20 && c < 0x7f && c != '\\')) {
            out.append(text.substr(at, length));
            at += length;
        } else {
            out += fmt::format("\\x{:02x}", c);
            ++at;
        }
    }
    return out;
}

bool natural_less(std::string_view a, std::string_view b) {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (!digit(a[i]) || !digit(b[j])) {
            if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
            ++i, ++j;
            continue;
        }
        size_t run_a = i, run_b = j;
        while (run_a < a.size() && a[run_a] == '0') ++run_a;  // leading zeros do not change the value
        while (run_b < b.size() && b[run_b] == '0') ++run_b;
        size_t end_a = run_a, end_b = run_b;
        while (end_a < a.size() && digit(a[end_a])) ++end_a;
        while (end_b < b.size() && digit(b[end_b])) ++end_b;
        if (end_a - run_a != end_b - run_b) return end_a - run_a < end_b - run_b;  // fewer digits, smaller
        if (int c = a.substr(run_a, end_a - run_a).compare(b.substr(run_b, end_b - run_b)); c != 0) return c < 0;
        if (end_a - i != end_b - j) return end_a - i < end_b - j;  // equal values: fewer leading zeros first
        i = end_a, j = end_b;
    }
    return a.size() - i < b.size() - j;
}

}  // namespace ik
