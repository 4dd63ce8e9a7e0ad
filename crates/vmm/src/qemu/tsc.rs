//! The host's TSC frequency, for `tsc_early_khz=` under TCG.
//!
//! Under TCG, `-M microvm` hangs in early boot in about 7% of runs unless the
//! guest kernel is told the TSC frequency up front (SPEC §13): its own early
//! calibration against the emulated PIT races the emulation and can spin
//! forever. The sources, most precise first: the kernel's own `tsc_freq_khz`
//! (only some kernels export it), the kernel log's calibration lines, and
//! `/proc/cpuinfo`'s `cpu MHz` (which under frequency scaling is the current
//! clock, not the TSC, hence last).

use std::path::Path;
use std::sync::OnceLock;

use banger_sys::Cmd;

const SYSFS_TSC_KHZ: &str = "/sys/devices/system/cpu/cpu0/tsc_freq_khz";
const CPUINFO: &str = "/proc/cpuinfo";

/// The host TSC frequency in kHz, measured once per process; `None` when no
/// source gives a plausible value.
pub fn host_tsc_khz() -> Option<u64> {
    static CACHED: OnceLock<Option<u64>> = OnceLock::new();
    *CACHED.get_or_init(measure)
}

fn measure() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(Path::new(p)).ok();
    read(SYSFS_TSC_KHZ)
        .and_then(|s| parse_sysfs_khz(&s))
        // `dmesg` fails for non-root users where dmesg_restrict is set; that
        // only means falling through to /proc/cpuinfo.
        .or_else(|| {
            Cmd::new("dmesg")
                .run()
                .ok()
                .and_then(|out| parse_dmesg_khz(&out.stdout_str()))
        })
        .or_else(|| read(CPUINFO).and_then(|s| parse_cpuinfo_khz(&s)))
}

/// A TSC below 100 MHz or above 100 GHz is a parsing accident, not a CPU.
fn plausible(khz: u64) -> Option<u64> {
    (100_000..=100_000_000).contains(&khz).then_some(khz)
}

fn mhz_to_khz(mhz: &str) -> Option<u64> {
    let mhz: f64 = mhz.trim().parse().ok()?;
    if !mhz.is_finite() || mhz <= 0.0 {
        return None;
    }
    plausible((mhz * 1000.0).round() as u64)
}

pub(crate) fn parse_sysfs_khz(text: &str) -> Option<u64> {
    text.trim().parse().ok().and_then(plausible)
}

/// The refined calibration when the kernel logged one, else the first
/// detection: `tsc: Refined TSC clocksource calibration: 2299.998 MHz`,
/// `tsc: Detected 2300.000 MHz processor`.
pub(crate) fn parse_dmesg_khz(text: &str) -> Option<u64> {
    let after = |marker: &str| {
        text.lines().find_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            mhz_to_khz(rest.split_whitespace().next()?)
        })
    };
    after("tsc: Refined TSC clocksource calibration:").or_else(|| after("tsc: Detected"))
}

pub(crate) fn parse_cpuinfo_khz(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "cpu MHz").then(|| mhz_to_khz(value))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_value_is_khz() {
        assert_eq!(parse_sysfs_khz("2299998\n"), Some(2_299_998));
        assert_eq!(parse_sysfs_khz("0\n"), None);
        assert_eq!(parse_sysfs_khz("garbage"), None);
    }

    #[test]
    fn dmesg_prefers_the_refined_calibration() {
        let log = "[    0.000052] tsc: Detected 2300.000 MHz processor\n\
                   [    0.360254] clocksource: tsc: mask: 0xffffffffffffffff\n\
                   [    1.204000] tsc: Refined TSC clocksource calibration: 2299.998 MHz\n";
        assert_eq!(parse_dmesg_khz(log), Some(2_299_998));
        let detected_only = "[    0.000052] tsc: Detected 2300.000 MHz processor\n";
        assert_eq!(parse_dmesg_khz(detected_only), Some(2_300_000));
        assert_eq!(
            parse_dmesg_khz("[ 0.1] clocksource: tsc: mask: 0xff\n"),
            None
        );
    }

    #[test]
    fn cpuinfo_uses_the_first_cpu_mhz() {
        let info = "processor\t: 0\nmodel name\t: Some CPU\ncpu MHz\t\t: 2300.000\n\
                    cache size\t: 1 KB\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\n";
        assert_eq!(parse_cpuinfo_khz(info), Some(2_300_000));
        assert_eq!(parse_cpuinfo_khz("cpu MHz : nan\n"), None);
        assert_eq!(parse_cpuinfo_khz("cpu MHz : -5\n"), None);
        assert_eq!(parse_cpuinfo_khz("model name : x\n"), None);
    }

    #[test]
    fn implausible_frequencies_are_refused() {
        assert_eq!(parse_cpuinfo_khz("cpu MHz : 0.5\n"), None);
        assert_eq!(
            parse_dmesg_khz("tsc: Detected 999999999 MHz processor"),
            None
        );
    }
}
