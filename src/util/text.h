// Text that came from outside (paths, database strings) checked before it goes where only UTF-8
// may go (a JSON document), and shown safely in a one-line message.
#pragma once

#include <string>
#include <string_view>

namespace ik {

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view text);

// `text` for a message: printable ASCII and valid UTF-8 as they are, every other byte as \xNN.
std::string printable(std::string_view text);

// Whether `a` sorts before `b` with runs of digits compared by their value ("id=9" before
// "id=10", "(2,7)" before "(10,1)"), every other byte by its value. Row labels built from integer
// keys or a ctid come out in key order without asking the database to sort.
bool natural_less(std::string_view a, std::string_view b);

}  // namespace ik
