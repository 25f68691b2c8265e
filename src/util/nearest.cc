#include "util/nearest.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace ik {
namespace {

bool same_letter(char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
}

// Optimal string alignment distance, ignoring case: Levenshtein plus swapping two neighbours
// ("Encrpytion"). Three rows of the table (i - 2, i - 1, i) in one allocation.
size_t edit_distance(std::string_view a, std::string_view b) {
    const size_t width = b.size() + 1;
    std::vector<size_t> rows(3 * width);
    auto row = [&](size_t i) { return rows.data() + (i % 3) * width; };
    for (size_t j = 0; j <= b.size(); ++j) row(0)[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t* d = row(i);
        const size_t* up = row(i - 1);
        const size_t* up2 = i > 1 ? row(i - 2) : nullptr;
        d[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            d[j] = std::min({up[j] + 1, d[j - 1] + 1, up[j - 1] + !same_letter(a[i - 1], b[j - 1])});
            if (i > 1 && j > 1 && same_letter(a[i - 1], b[j - 2]) && same_letter(a[i - 2], b[j - 1]))
                d[j] = std::min(d[j], up2[j - 2] + 1);
        }
    }
    return row(a.size())[b.size()];
}

}  // namespace

std::optional<std::string> nearest(const std::string& word, const std::vector<std::string>& candidates) {
    std::string_view key = word;
    std::optional<std::string> best;
    size_t best_distance = std::max<size_t>(2, key.size() / 4) + 1;
    for (const auto& candidate : candidates) {
        // The distance is at least the difference in length: a far longer word (a pasted value,
        // fuzz input) is skipped without the quadratic table.
        size_t shortest = std::min(key.size(), candidate.size());
        if (std::max(key.size(), candidate.size()) - shortest >= best_distance) continue;
        size_t distance = edit_distance(key, candidate);
        if (distance < best_distance) best = candidate, best_distance = distance;
    }
    return best;
}

}  // namespace ik
