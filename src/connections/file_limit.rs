//! The open-file limit: raised to the hard limit at start-up, and the base of the default
//! connection bound (every connection is a file descriptor).

/// Raises the soft limit on open files to the hard limit and logs both. Returns the soft
/// limit in force afterwards (`None` where it cannot be read).
pub fn raise_file_limit() -> Option<u64> {
    let (soft, hard) = read()?;
    if soft < hard {
        if let Err(error) = write(hard, hard) {
            tracing::warn!(soft, hard, %error, "cannot raise the open-file limit");
            return Some(soft);
        }
        tracing::info!(
            soft = hard,
            hard,
            was = soft,
            "open-file limit raised to the hard limit"
        );
        return Some(hard);
    }
    tracing::info!(soft, hard, "open-file limit");
    Some(soft)
}

/// The soft limit on open files now in force.
pub fn file_limit() -> Option<u64> {
    read().map(|(soft, _)| soft)
}

#[cfg(unix)]
fn read() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    // `rlim_t` is not `u64` on every Unix.
    #[allow(clippy::unnecessary_cast)]
    (status == 0).then_some((limit.rlim_cur as u64, limit.rlim_max as u64))
}

#[cfg(unix)]
fn write(soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn read() -> Option<(u64, u64)> {
    None
}

#[cfg(not(unix))]
fn write(_: u64, _: u64) -> std::io::Result<()> {
    Ok(())
}
