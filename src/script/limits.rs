//! The limits a script runs under, their ranges, and what `0` means for each.

use std::fmt;

/// The limits a script runs under. Every one is enforced; a script that reaches one fails
/// with [`ScriptError::Limit`](super::ScriptError::Limit) naming it, as the runner's flag
/// spells it.
///
/// | limit | default | `0` means | range |
/// |---|---|---|---|
/// | `max_operations` | 100,000,000 | no limit (the timeout still ends the script) | any |
/// | `max_call_depth` | 64 | refused | 1 to [`Limits::MAX_DEPTH`] |
/// | `max_expr_depth` | 64 | refused | 1 to [`Limits::MAX_DEPTH`] |
/// | `max_string_size` (bytes) | 10 MiB | refused | 1 to [`Limits::MAX_STRING_SIZE`] |
/// | `max_array_size` (elements) | 65,536 | refused | 1 to [`Limits::MAX_CONTAINER_SIZE`] |
/// | `max_map_size` (entries) | 65,536 | refused | 1 to [`Limits::MAX_CONTAINER_SIZE`] |
/// | `max_memory` (bytes) | 256 MiB | no limit | any |
/// | `max_output_size` (bytes) | 10 MiB | refused | 1 to 512 MiB |
/// | `max_log_size` (bytes) | 1 MiB | keep no log | any |
///
/// [`Limits::validate`] checks the ranges; a [`Sandbox`](super::Sandbox) built from limits
/// outside them clamps them into range (so no setting can overflow a thread's stack).
/// `max_memory` is enforced when the process counts allocations with
/// [`CountingAllocator`](super::CountingAllocator) (the `baobab` binary does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Operations (Rhai's unit of work) per run.
    pub max_operations: u64,
    /// Depth of nested function calls.
    pub max_call_depth: usize,
    /// Depth of nested expressions (checked when compiling), in the script and in each
    /// function body.
    pub max_expr_depth: usize,
    /// Bytes in a string, and in all the strings one value holds.
    pub max_string_size: usize,
    /// Elements in an array (or bytes in a blob), counted through nested arrays.
    pub max_array_size: usize,
    /// Entries in a map, counted through nested maps.
    pub max_map_size: usize,
    /// Bytes a running script may hold: checked at every operation.
    pub max_memory: usize,
    /// Bytes of the job's output, as serialised (text, or JSON for maps and arrays).
    pub max_output_size: usize,
    /// Bytes of the job's log (`print` and `debug`); what comes past it is dropped and
    /// counted in a last line saying so.
    pub max_log_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000_000,
            max_call_depth: 64,
            max_expr_depth: 64,
            max_string_size: 10 * MIB,
            max_array_size: 65_536,
            max_map_size: 65_536,
            max_memory: 256 * MIB,
            max_output_size: 10 * MIB,
            max_log_size: MIB,
        }
    }
}

const MIB: usize = 1024 * 1024;

impl Limits {
    /// The deepest call or expression nesting a sandbox allows. Scripts run on threads with
    /// the stack [`Sandbox::stack_size`](super::Sandbox::stack_size) gives for their limits,
    /// and a guard checked at every operation ends a script that comes near the end of its
    /// stack anyway.
    pub const MAX_DEPTH: usize = 256;

    /// The largest array or map size limit. The sizes count nested arrays and maps, so they
    /// bound how deeply a value can nest, and so how deep Rhai's recursion over a value goes:
    /// the stack a script needs grows with them (see
    /// [`Sandbox::stack_size`](super::Sandbox::stack_size)).
    pub const MAX_CONTAINER_SIZE: usize = 1 << 20;

    /// The largest string size limit: one operation may allocate a few times it (a padded
    /// string of four-byte characters, a case change) before any check can run.
    pub const MAX_STRING_SIZE: usize = 256 * MIB;

    /// The largest output a job may produce (Redis's largest string is 512 MiB).
    pub const MAX_OUTPUT_SIZE: usize = 512 * MIB;

    /// Checks every limit against its range.
    pub fn validate(&self) -> Result<(), LimitError> {
        let depth = |limit: Limit, value: usize| {
            if value == 0 {
                Err(LimitError::new(
                    limit,
                    value as u64,
                    "must be at least 1 (0 would mean no limit, which could overflow the stack)",
                ))
            } else if value > Self::MAX_DEPTH {
                Err(LimitError::new(
                    limit,
                    value as u64,
                    format!("must be at most {}", Self::MAX_DEPTH),
                ))
            } else {
                Ok(())
            }
        };
        depth(Limit::CallDepth, self.max_call_depth)?;
        depth(Limit::ExprDepth, self.max_expr_depth)?;
        if self.max_string_size == 0 || self.max_string_size > Self::MAX_STRING_SIZE {
            return Err(LimitError::new(
                Limit::StringSize,
                self.max_string_size as u64,
                format!("must be 1 to {} bytes", Self::MAX_STRING_SIZE),
            ));
        }
        for (limit, value) in [
            (Limit::ArraySize, self.max_array_size),
            (Limit::MapSize, self.max_map_size),
        ] {
            if value == 0 || value > Self::MAX_CONTAINER_SIZE {
                return Err(LimitError::new(
                    limit,
                    value as u64,
                    format!(
                        "must be 1 to {} (it bounds how deeply values nest)",
                        Self::MAX_CONTAINER_SIZE
                    ),
                ));
            }
        }
        if self.max_output_size == 0 || self.max_output_size > Self::MAX_OUTPUT_SIZE {
            return Err(LimitError::new(
                Limit::OutputSize,
                self.max_output_size as u64,
                format!("must be 1 to {} bytes", Self::MAX_OUTPUT_SIZE),
            ));
        }
        Ok(())
    }

    /// These limits brought into their ranges.
    pub fn clamped(&self) -> Limits {
        Limits {
            max_call_depth: self.max_call_depth.clamp(1, Self::MAX_DEPTH),
            max_expr_depth: self.max_expr_depth.clamp(1, Self::MAX_DEPTH),
            max_string_size: self.max_string_size.clamp(1, Self::MAX_STRING_SIZE),
            max_array_size: self.max_array_size.clamp(1, Self::MAX_CONTAINER_SIZE),
            max_map_size: self.max_map_size.clamp(1, Self::MAX_CONTAINER_SIZE),
            max_output_size: self.max_output_size.clamp(1, Self::MAX_OUTPUT_SIZE),
            ..self.clone()
        }
    }

    /// The value of `limit` here.
    pub fn of(&self, limit: Limit) -> u64 {
        match limit {
            Limit::Operations => self.max_operations,
            Limit::CallDepth => self.max_call_depth as u64,
            Limit::ExprDepth => self.max_expr_depth as u64,
            Limit::StringSize => self.max_string_size as u64,
            Limit::ArraySize => self.max_array_size as u64,
            Limit::MapSize => self.max_map_size as u64,
            Limit::Memory => self.max_memory as u64,
            Limit::OutputSize => self.max_output_size as u64,
            Limit::LogSize => self.max_log_size as u64,
            Limit::Stack => super::stack::stack_size(self) as u64,
        }
    }
}

/// Which limit a script reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_operations`].
    Operations,
    /// [`Limits::max_call_depth`].
    CallDepth,
    /// [`Limits::max_expr_depth`].
    ExprDepth,
    /// [`Limits::max_string_size`].
    StringSize,
    /// [`Limits::max_array_size`].
    ArraySize,
    /// [`Limits::max_map_size`].
    MapSize,
    /// [`Limits::max_memory`].
    Memory,
    /// [`Limits::max_output_size`].
    OutputSize,
    /// [`Limits::max_log_size`] (the log is truncated, the job does not fail).
    LogSize,
    /// The thread's stack: a script nested deeper than its thread can hold (should the
    /// stack [`Sandbox::stack_size`](super::Sandbox::stack_size) gives fall short).
    Stack,
}

impl Limit {
    /// The limit's name, as the runner's flags spell it.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Operations => "max-operations",
            Limit::CallDepth => "max-call-depth",
            Limit::ExprDepth => "max-expr-depth",
            Limit::StringSize => "max-string-size",
            Limit::ArraySize => "max-array-size",
            Limit::MapSize => "max-map-size",
            Limit::Memory => "max-memory",
            Limit::OutputSize => "max-output-size",
            Limit::LogSize => "max-log-size",
            Limit::Stack => "stack",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A limit set outside its range: see [`Limits::validate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--{limit} {value}: {reason}")]
pub struct LimitError {
    /// Which limit.
    pub limit: Limit,
    /// The value given.
    pub value: u64,
    /// What its range is.
    pub reason: String,
}

impl LimitError {
    fn new(limit: Limit, value: u64, reason: impl Into<String>) -> Self {
        LimitError {
            limit,
            value,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_out_of_range_values_are_named() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let zero_depth = Limits {
            max_call_depth: 0,
            ..Limits::default()
        };
        assert_eq!(zero_depth.validate().unwrap_err().limit, Limit::CallDepth);
        let deep = Limits {
            max_expr_depth: Limits::MAX_DEPTH + 1,
            ..Limits::default()
        };
        let error = deep.validate().unwrap_err();
        assert_eq!(error.limit, Limit::ExprDepth);
        assert!(error.to_string().starts_with("--max-expr-depth 257: "));
        let no_output = Limits {
            max_output_size: 0,
            ..Limits::default()
        };
        assert_eq!(no_output.validate().unwrap_err().limit, Limit::OutputSize);
        let clamped = Limits {
            max_call_depth: 0,
            max_expr_depth: 100_000,
            ..Limits::default()
        }
        .clamped();
        assert_eq!((clamped.max_call_depth, clamped.max_expr_depth), (1, 256));
        assert_eq!(clamped.validate(), Ok(()));
    }
}
