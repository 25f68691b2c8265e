// Byte-buffer vocabulary shared by every layer: plain bytes, and key material that is zeroed on free.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <botan/mem_ops.h>
#include <botan/secmem.h>

namespace ik {

using Bytes = std::vector<uint8_t>;
using SecretBytes = Botan::secure_vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// Zeroes every block before giving it back, for containers of any type (Botan's secure_allocator
// takes integers only): what a SecretString or a SecretJson held leaves no copy in freed memory.
template <typename T>
struct ScrubbingAllocator {
    using value_type = T;
    ScrubbingAllocator() noexcept = default;
    template <typename U>
    ScrubbingAllocator(const ScrubbingAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
    void deallocate(T* p, std::size_t n) noexcept {
        Botan::secure_scrub_memory(p, n * sizeof(T));
        std::allocator<T>().deallocate(p, n);
    }
    template <typename U>
    bool operator==(const ScrubbingAllocator<U>&) const noexcept { return true; }
};

// Text that is a secret or carries one (a token, a base64 key, an HTTP body holding either).
// Strings of up to 15 bytes live inside the object itself; every secret we hold is longer.
using SecretString = std::basic_string<char, std::char_traits<char>, ScrubbingAllocator<char>>;

inline SecretString secret_text(std::string_view s) { return SecretString(s); }

// Zeroes a string's bytes now and empties it (for std::string copies a library hands back).
template <typename Text>
void scrub(Text& text) {
    Botan::secure_scrub_memory(text.data(), text.size());
    text.clear();
}

inline ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_text(ByteView b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace ik
