//! Every Redis key the bridge and its clients use, built in one place so that producers and
//! consumers never spell a key twice.

use std::fmt;
use std::str::FromStr;

/// Which wire format a runner speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// The Hero format, as Hero actors use it: `hero:job:{id}` hashes,
    /// `hero:job:actor_queue:{actor}` queues.
    Hero,
    /// The rhailib format: `rhai_task_details:{id}` hashes, `rhai_tasks:{circle}` queues.
    Rhailib,
}

impl Profile {
    /// `hero` or `rhailib`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Hero => "hero",
            Profile::Rhailib => "rhailib",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hero" => Ok(Profile::Hero),
            "rhailib" => Ok(Profile::Rhailib),
            other => Err(format!("unknown profile {other:?} (hero or rhailib)")),
        }
    }
}

/// The keys of one profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    /// The profile.
    pub profile: Profile,
}

impl Keys {
    /// The keys of `profile`.
    pub fn new(profile: Profile) -> Self {
        Keys { profile }
    }

    /// The hash of a job: `hero:job:{id}` or `rhai_task_details:{id}`.
    pub fn job(&self, id: &str) -> String {
        match self.profile {
            Profile::Hero => format!("hero:job:{id}"),
            Profile::Rhailib => format!("rhai_task_details:{id}"),
        }
    }

    /// The work queue of an actor (a list of job ids; producers LPUSH):
    /// `hero:job:actor_queue:{actor}` or `rhai_tasks:{circle}`.
    pub fn queue(&self, actor: &str) -> String {
        match self.profile {
            Profile::Hero => format!("hero:job:actor_queue:{actor}"),
            Profile::Rhailib => format!("rhai_tasks:{actor}"),
        }
    }

    /// The queue of an actor's jobs of `priority`: [`queue`](Self::queue) for normal ones,
    /// `hero:job:actor_queue_high:{actor}` / `…_low:` (`rhai_tasks_high:{circle}` /
    /// `rhai_tasks_low:`) for the others.
    pub fn queue_of(&self, actor: &str, priority: crate::jobs::Priority) -> String {
        use crate::jobs::Priority;
        let tag = match priority {
            Priority::Normal => return self.queue(actor),
            Priority::High => "high",
            Priority::Low => "low",
        };
        match self.profile {
            Profile::Hero => format!("hero:job:actor_queue_{tag}:{actor}"),
            Profile::Rhailib => format!("rhai_tasks_{tag}:{actor}"),
        }
    }

    /// The delayed jobs of an actor (a sorted set of job ids, scored by the millisecond since
    /// the epoch they may run from): `hero:job:delayed:{actor}` or `rhai_delayed:{circle}`.
    pub fn delayed(&self, actor: &str) -> String {
        match self.profile {
            Profile::Hero => format!("hero:job:delayed:{actor}"),
            Profile::Rhailib => format!("rhai_delayed:{actor}"),
        }
    }

    /// The dead jobs of an actor (a sorted set of job ids, scored by the millisecond since
    /// the epoch they ended): jobs that ended `error` after running, their retries used.
    /// `hero:job:dead:{actor}` or `rhai_dead:{circle}`.
    pub fn dead(&self, actor: &str) -> String {
        match self.profile {
            Profile::Hero => format!("hero:job:dead:{actor}"),
            Profile::Rhailib => format!("rhai_dead:{actor}"),
        }
    }

    /// The stop queue of an actor (job ids to cancel): `hero:stop_queue:{actor}` (rhailib
    /// has none of its own; the same name under `rhai_stop:` is used).
    pub fn stop_queue(&self, actor: &str) -> String {
        match self.profile {
            Profile::Hero => format!("hero:stop_queue:{actor}"),
            Profile::Rhailib => format!("rhai_stop:{actor}"),
        }
    }

    /// The reply list of a Hero job: `hero:reply:{id}`. (A rhailib task names its reply
    /// queue in its hash, field `reply_queue_name`.)
    pub fn reply(&self, id: &str) -> String {
        match self.profile {
            Profile::Hero => format!("hero:reply:{id}"),
            Profile::Rhailib => format!("rhai_reply:{id}"),
        }
    }

    /// A runner's processing list: the ids it took and has not finished.
    pub fn processing(&self, actor: &str, runner: &str) -> String {
        format!("{}:processing:{actor}:{runner}", self.prefix())
    }

    /// A runner's heartbeat key (it expires when the runner stops refreshing it).
    pub fn heartbeat(&self, runner: &str) -> String {
        format!("{}:runner:{runner}:heartbeat", self.prefix())
    }

    /// A runner's announcement (a hash: actor, host, pid, workers, running, done, rate,
    /// heartbeat_ttl_ms, started_at), refreshed with each heartbeat and expiring ten
    /// heartbeats after the last.
    pub fn runner_info(&self, runner: &str) -> String {
        format!("{}:runner:{runner}:info", self.prefix())
    }

    /// The set of runners serving an actor.
    pub fn runners(&self, actor: &str) -> String {
        format!("{}:runners:{actor}", self.prefix())
    }

    /// A runner's control list (commands such as `workers 4`).
    pub fn control(&self, runner: &str) -> String {
        format!("{}:runner:{runner}:control", self.prefix())
    }

    fn prefix(&self) -> &'static str {
        match self.profile {
            Profile::Hero => "hero",
            Profile::Rhailib => "rhai",
        }
    }
}

/// A stand-in runner id, to split a key built for one ([`around_runner`]).
pub(super) const RUNNER: &str = "\u{0}runner\u{0}";

/// A runner's key (built for [`RUNNER`]) as the parts before and after the runner id: the Lua
/// scripts build the keys of every runner from them, as `keys.rs` spells them.
pub(super) fn around_runner(key: String) -> (String, String) {
    let (head, tail) = key.split_once(RUNNER).expect("the key holds the runner id");
    (head.to_string(), tail.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spelled_as_the_wire_format_says() {
        let hero = Keys::new(Profile::Hero);
        assert_eq!(hero.job("j1"), "hero:job:j1");
        assert_eq!(hero.queue("a1"), "hero:job:actor_queue:a1");
        use crate::jobs::Priority;
        assert_eq!(hero.queue_of("a1", Priority::Normal), hero.queue("a1"));
        assert_eq!(
            hero.queue_of("a1", Priority::High),
            "hero:job:actor_queue_high:a1"
        );
        assert_eq!(
            Keys::new(Profile::Rhailib).queue_of("c1", Priority::Low),
            "rhai_tasks_low:c1"
        );
        assert_eq!(hero.stop_queue("a1"), "hero:stop_queue:a1");
        assert_eq!(hero.reply("j1"), "hero:reply:j1");
        assert_eq!(hero.delayed("a1"), "hero:job:delayed:a1");
        assert_eq!(hero.dead("a1"), "hero:job:dead:a1");
        let rhai = Keys::new(Profile::Rhailib);
        assert_eq!(rhai.job("t1"), "rhai_task_details:t1");
        assert_eq!(rhai.queue("c1"), "rhai_tasks:c1");
        assert_eq!(rhai.dead("c1"), "rhai_dead:c1");
        assert_eq!("hero".parse::<Profile>(), Ok(Profile::Hero));
        assert!("v".parse::<Profile>().is_err());
    }
}
