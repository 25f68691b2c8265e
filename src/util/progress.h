// A one-line progress bar on stderr for long scans, shown only when stderr is a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ik {

class Progress {
public:
    // Shown only if `wanted` (not --quiet/--json) and stderr is a terminal.
    Progress(std::string label, bool wanted);
    bool enabled() const { return enabled_; }
    void update(uint64_t done, uint64_t total);  // redraws at most ~10 times a second
    void finish();                               // clears the line

private:
    std::string label_;
    bool enabled_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace ik
