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

}  // namespace ik
