#include "util/shared_library.h"

#include <dlfcn.h>

namespace ik {

SharedLibrary::SharedLibrary(std::string soname, std::string package, ExitCode code)
    : soname_(std::move(soname)), package_(std::move(package)), code_(code) {}

void SharedLibrary::open() {
    // Never closed: the library lives as long as the process, like a linked one.
    handle_ = ::dlopen(soname_.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
        const char* why = ::dlerror();
        throw Error(code_, fmt::format("cannot load {}: {}", soname_, why ? why : "unknown error"),
                    fmt::format("install the Debian package {}", package_));
    }
}

void* SharedLibrary::symbol(const char* name) {
    std::call_once(opened_, [this] { open(); });
    void* address = ::dlsym(handle_, name);
    if (address == nullptr) fail(code_, "{} has no function {}; is it an older version?", soname_, name);
    return address;
}

}  // namespace ik
