// "Did you mean …?": the known word nearest to a mistyped one.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ik {

// The candidate nearest to `word` (ignoring case) if it is near enough to be a typo of it: at most
// max(2, length/4) insertions, deletions, substitutions or swaps of neighbours. Ties go to the first.
std::optional<std::string> nearest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace ik
