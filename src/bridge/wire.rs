//! Jobs as Redis hashes: the fields of each profile, status spellings, times, and the parse of
//! a hash back into a job with an error naming the field that is wrong.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use super::keys::Profile;
pub(crate) use crate::jobs::time::{iso8601, parse_time};
use crate::jobs::{Job, JobStatus};

/// Why a hash is not a job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed job hash: field `{field}`: {reason}")]
pub(crate) struct WireError {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn wrong(field: &'static str, reason: impl Into<String>) -> WireError {
    WireError {
        field,
        reason: reason.into(),
    }
}

/// A status as `profile` spells it.
pub(crate) fn status_to_wire(profile: Profile, status: JobStatus) -> &'static str {
    match (profile, status) {
        (Profile::Hero, status) => status.as_str(),
        (Profile::Rhailib, JobStatus::Dispatched) => "pending",
        (Profile::Rhailib, JobStatus::Waiting) => "waiting",
        (Profile::Rhailib, JobStatus::Started) => "processing",
        (Profile::Rhailib, JobStatus::Finished) => "completed",
        (Profile::Rhailib, JobStatus::Error) => "error",
    }
}

/// A status from `profile`'s spelling.
pub(crate) fn status_from_wire(profile: Profile, text: &str) -> Result<JobStatus, WireError> {
    let status = match (profile, text) {
        (Profile::Hero, "dispatched") | (Profile::Rhailib, "pending") => JobStatus::Dispatched,
        (Profile::Hero, "waiting_for_prerequisites") | (Profile::Rhailib, "waiting") => {
            JobStatus::Waiting
        }
        (Profile::Hero, "started") | (Profile::Rhailib, "processing") => JobStatus::Started,
        (Profile::Hero, "finished") | (Profile::Rhailib, "completed") => JobStatus::Finished,
        (_, "error") => JobStatus::Error,
        (_, other) => return Err(wrong("status", format!("unknown status {other:?}"))),
    };
    Ok(status)
}

/// A job's fields as `profile` writes them when it is submitted.
pub(crate) fn job_to_fields(profile: Profile, job: &Job) -> Vec<(&'static str, String)> {
    let now = iso8601(SystemTime::now());
    let prerequisites = serde_json::to_string(&job.prerequisites).expect("a list of strings");
    let mut fields = vec![
        ("id", job.id.clone()),
        ("caller_id", job.caller_id.clone()),
        ("context_id", job.context_id.clone()),
        ("script", job.script.clone()),
        ("status", status_to_wire(profile, job.status).to_string()),
        ("created_at", iso8601(job.created_at)),
        ("updated_at", now),
    ];
    match profile {
        Profile::Hero => {
            let env = serde_json::to_string(&job.env_vars).expect("a map of strings");
            fields.extend([
                ("actor_id", job.actor_id.clone()),
                ("timeout", job.timeout.as_secs().to_string()),
                ("retries", job.retries.to_string()),
                ("concurrent", "false".to_string()),
                ("log_path", String::new()),
                ("env_vars", env),
                ("prerequisites", prerequisites.clone()),
                ("dependents", "[]".to_string()),
            ]);
        }
        Profile::Rhailib => {
            fields.push(("reply_queue_name", format!("rhai_reply:{}", job.id)));
            if !job.prerequisites.is_empty() {
                fields.push(("prerequisites", prerequisites));
                // Where a released task is queued (a rhailib task names no circle).
                fields.push(("actor_id", job.actor_id.clone()));
            }
            if job.retries > 0 {
                fields.push(("retries", job.retries.to_string()));
            }
        }
    }
    if let Some(backoff) = job.backoff {
        fields.push(("backoff", format!("{}", backoff.as_secs_f64())));
    }
    if job.priority != crate::jobs::Priority::Normal {
        fields.push(("priority", job.priority.as_str().to_string()));
    }
    if let Some(at) = job.run_at {
        fields.push(("run_at", iso8601(at)));
    }
    fields
}

/// The fields written when a job ends (status, output, error, times).
pub(crate) fn result_fields(profile: Profile, job: &Job) -> Vec<(&'static str, String)> {
    let mut fields = ending_fields(
        profile,
        job.status,
        job.output.as_deref(),
        job.error.as_deref(),
        job.finished_at.unwrap_or_else(SystemTime::now),
    );
    // What the script printed, one line each, within the sandbox's log limit.
    if !job.log.is_empty() {
        fields.push(("log", job.log.join("\n")));
    }
    // The start's fields too, in case its own write was folded into this one.
    if job.attempts > 0 {
        fields.push(("attempts", job.attempts.to_string()));
    }
    if profile == Profile::Hero
        && let Some(started) = job.started_at
    {
        fields.push(("started_at", iso8601(started)));
    }
    fields
}

/// The fields written when a job ends with `status` and its output or error at `finished_at`
/// (what [`result_fields`] writes for a job).
pub(crate) fn ending_fields(
    profile: Profile,
    status: JobStatus,
    output: Option<&str>,
    error: Option<&str>,
    finished_at: SystemTime,
) -> Vec<(&'static str, String)> {
    // `started_at` was written when the job was taken; an empty `output` or `error` is not
    // written (a job ends with one or the other).
    let finished_at = iso8601(finished_at);
    let mut fields = vec![
        ("status", status_to_wire(profile, status).to_string()),
        ("updated_at", finished_at.clone()),
    ];
    if let Some(output) = output {
        fields.push(("output", output.to_string()));
        if profile == Profile::Hero {
            // The V actors read `result`.
            fields.push(("result", output.to_string()));
        }
    }
    if let Some(error) = error {
        fields.push(("error", error.to_string()));
    }
    if profile == Profile::Hero {
        fields.push(("finished_at", finished_at));
    }
    fields
}

/// A hash's fields as stored (bytes; `None`: absent) as text. A field that is not UTF-8 is
/// an error naming it (the first such field, in the order given).
pub(crate) fn text_fields(
    fields: impl IntoIterator<Item = (&'static str, Option<Vec<u8>>)>,
) -> Result<HashMap<String, String>, WireError> {
    let mut hash = HashMap::new();
    for (field, value) in fields {
        let Some(value) = value else { continue };
        let text = String::from_utf8(value).map_err(|_| wrong(field, "not valid UTF-8"))?;
        hash.insert(field.to_string(), text);
    }
    Ok(hash)
}

/// A job from its hash. `id` is the id the hash was found under; `actor` the queue it came
/// from (a rhailib task has no actor field). Its script may be
/// [`DEFAULT_MAX_SCRIPT_BYTES`](crate::jobs::DEFAULT_MAX_SCRIPT_BYTES) long.
pub(crate) fn job_from_fields(
    profile: Profile,
    id: &str,
    actor: &str,
    hash: &HashMap<String, String>,
) -> Result<Job, WireError> {
    job_within(
        profile,
        id,
        actor,
        hash,
        crate::jobs::DEFAULT_MAX_SCRIPT_BYTES,
    )
}

/// [`job_from_fields`] with a script of up to `max_script_bytes`.
pub(crate) fn job_within(
    profile: Profile,
    id: &str,
    actor: &str,
    hash: &HashMap<String, String>,
    max_script_bytes: usize,
) -> Result<Job, WireError> {
    let get = |field: &'static str| hash.get(field).map(String::as_str);
    let script = get("script").ok_or_else(|| wrong("script", "missing"))?;
    let timeout = match get("timeout") {
        None | Some("") => Duration::from_secs(30),
        Some(text) => {
            let secs: u64 = text.parse().map_err(|_| {
                wrong(
                    "timeout",
                    format!("{text:?} is not a whole number of seconds"),
                )
            })?;
            Duration::from_secs(secs)
        }
    };
    let retries = match get("retries") {
        None | Some("") => 0,
        Some(text) => text
            .parse()
            .map_err(|_| wrong("retries", format!("{text:?} is not a whole number")))?,
    };
    let attempts: u32 = match get("attempts") {
        None | Some("") => 0,
        Some(text) => text
            .parse()
            .map_err(|_| wrong("attempts", format!("{text:?} is not a whole number")))?,
    };
    let backoff = match get("backoff") {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<f64>()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| {
                    wrong(
                        "backoff",
                        format!("{text:?} is not a number of seconds (0 or more)"),
                    )
                })?,
        ),
    };
    let prerequisites: Vec<String> = match get("prerequisites") {
        None | Some("") => Vec::new(),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| wrong("prerequisites", format!("not a JSON array of job ids: {e}")))?,
    };
    let env_vars: BTreeMap<String, String> = match get("env_vars") {
        None | Some("") => BTreeMap::new(),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| wrong("env_vars", format!("not a JSON object of strings: {e}")))?,
    };
    let status = match get("status") {
        None => JobStatus::Dispatched,
        Some(text) => status_from_wire(profile, text)?,
    };
    let created_at = match get("created_at") {
        None | Some("") => SystemTime::now(),
        Some(text) => parse_time(text)
            .ok_or_else(|| wrong("created_at", format!("{text:?} is not an ISO 8601 time")))?,
    };
    let mut builder = Job::builder(script)
        .id(id)
        .caller_id(
            get("caller_id")
                .filter(|s| !s.is_empty())
                .unwrap_or("anonymous"),
        )
        .context_id(
            get("context_id")
                .filter(|s| !s.is_empty())
                .unwrap_or("default"),
        )
        .actor_id(get("actor_id").filter(|s| !s.is_empty()).unwrap_or(actor))
        .timeout(timeout)
        .retries(retries)
        .max_script_bytes(max_script_bytes);
    if let Some(backoff) = backoff {
        builder = builder.backoff(backoff);
    }
    for id in prerequisites {
        builder = builder.prerequisite(id);
    }
    // Only where a client queues it: an unknown priority reads as normal.
    builder = builder.priority(
        get("priority")
            .and_then(|p| p.parse().ok())
            .unwrap_or_default(),
    );
    for (name, value) in env_vars {
        builder = builder.env(name, value);
    }
    let mut job = builder.build().map_err(|error| WireError {
        field: "job",
        reason: error.to_string(),
    })?;
    job.status = status;
    job.attempts = attempts;
    // The runner writes `errors`; one it cannot read is shown as none.
    job.errors = get("errors")
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    job.created_at = created_at;
    job.output = get("output").filter(|s| !s.is_empty()).map(str::to_string);
    job.error = get("error").filter(|s| !s.is_empty()).map(str::to_string);
    // When it was taken and when it ended: unreadable times are left out (they only
    // inform), never an error.
    job.started_at = get("started_at").and_then(parse_time);
    job.run_at = get("run_at").and_then(parse_time);
    job.finished_at = get("finished_at").and_then(parse_time);
    job.log = get("log")
        .filter(|s| !s.is_empty())
        .map(|log| log.lines().map(str::to_string).collect())
        .unwrap_or_default();
    Ok(job)
}

/// Whether a job's hash names its reply list (`reply_queue_name`: rhailib), and so whether a
/// reply is the task as JSON (rhailib) rather than its status (Hero).
pub(crate) fn reply_list_in_hash(profile: Profile) -> bool {
    match profile {
        Profile::Rhailib => true,
        Profile::Hero => false,
    }
}

/// [`reply_list_in_hash`] as the Lua scripts take it: `1` or `0`.
pub(crate) fn reply_named_in_hash(profile: Profile) -> &'static str {
    if reply_list_in_hash(profile) {
        "1"
    } else {
        "0"
    }
}

/// What a job's reply list gets when it ends: the status (Hero), or the task as JSON (rhailib).
pub(crate) fn reply_payload(
    profile: Profile,
    id: &str,
    status: JobStatus,
    output: Option<&str>,
    error: Option<&str>,
) -> String {
    let status = status_to_wire(profile, status);
    match profile {
        Profile::Hero => status.to_string(),
        Profile::Rhailib => serde_json::json!({
            "task_id": id,
            "status": status,
            "output": output,
            "error": error,
        })
        .to_string(),
    }
}

/// The fields of a job hash the runner reads (rhailib: and `reply_queue_name`).
const READ_FIELDS: [&str; 13] = [
    "script",
    "status",
    "timeout",
    "retries",
    "env_vars",
    "created_at",
    "caller_id",
    "context_id",
    "actor_id",
    "attempts",
    "backoff",
    "prerequisites",
    "reply_queue_name",
];

/// The fields of a job hash the runner reads to run it.
pub(crate) fn read_fields(profile: Profile) -> &'static [&'static str] {
    match profile {
        Profile::Hero => &READ_FIELDS[..12],
        Profile::Rhailib => &READ_FIELDS[..],
    }
}

/// The fields a job's hash gets when a worker starts it: its status `started`, when, and its
/// runs so far (this one counted).
pub(crate) fn started_fields(
    profile: Profile,
    now: &str,
    attempts: u32,
) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        (
            "status",
            status_to_wire(profile, JobStatus::Started).to_string(),
        ),
        ("updated_at", now.to_string()),
        ("attempts", attempts.to_string()),
    ];
    if profile == Profile::Hero {
        fields.push(("started_at", now.to_string()));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn times_round_trip_through_iso_8601() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_742_788_021);
        let text = iso8601(t);
        assert_eq!(text, "2026-11-27T01:26:28.021Z"); // `date -u -d @1795742788`
        assert_eq!(parse_time(&text), Some(t));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(parse_time("12"), Some(UNIX_EPOCH + Duration::from_secs(12)));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-01",
            "2026-01-01T25:00:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_job_round_trips_through_its_hash_in_both_profiles() {
        let job = Job::builder("40 + 2")
            .caller_id("alice")
            .context_id("c1")
            .actor_id("a1")
            .env("X", "1")
            .retries(2)
            .build()
            .unwrap();
        for profile in [Profile::Hero, Profile::Rhailib] {
            let hash: HashMap<String, String> = job_to_fields(profile, &job)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let back = job_from_fields(profile, &job.id, "a1", &hash).unwrap();
            assert_eq!(back.script, job.script);
            assert_eq!(back.caller_id, "alice");
            assert_eq!(back.status, JobStatus::Dispatched);
            if profile == Profile::Hero {
                assert_eq!(back.env_vars, job.env_vars);
                assert_eq!(back.retries, 2);
            }
        }
    }

    #[test]
    fn malformed_hashes_name_the_field() {
        let base: HashMap<String, String> = [("script", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let with = |field: &str, value: &str| {
            let mut hash = base.clone();
            hash.insert(field.to_string(), value.to_string());
            job_from_fields(Profile::Hero, "j", "a", &hash)
                .unwrap_err()
                .field
        };
        assert_eq!(
            job_from_fields(Profile::Hero, "j", "a", &HashMap::new())
                .unwrap_err()
                .field,
            "script"
        );
        assert_eq!(with("timeout", "soon"), "timeout");
        assert_eq!(with("retries", "-1"), "retries");
        assert_eq!(with("env_vars", "[1]"), "env_vars");
        assert_eq!(with("status", "paused"), "status");
        assert_eq!(with("created_at", "yesterday"), "created_at");
        assert_eq!(with("timeout", "0"), "job");
        assert_eq!(
            status_from_wire(Profile::Rhailib, "completed"),
            Ok(JobStatus::Finished)
        );
        assert!(status_from_wire(Profile::Rhailib, "finished").is_err());
    }

    #[test]
    fn a_field_that_is_not_utf8_is_named() {
        let fields = [
            ("script", Some(b"1".to_vec())),
            ("status", None),
            ("caller_id", Some(vec![b'a', 0xff])),
        ];
        let error = text_fields(fields).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed job hash: field `caller_id`: not valid UTF-8"
        );
        let hash = text_fields([("script", Some(b"1".to_vec())), ("status", None)]).unwrap();
        assert_eq!(hash.len(), 1);
    }
}
