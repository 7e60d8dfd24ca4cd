//! Editing a pools file: the rules of `pools create`, `delete`, `move` and `set-profile`, applied
//! to the file in force. An edit that breaks a rule is an error and leaves nothing to apply; what
//! the edited file means for the node (CPUs that exist, moves between pools) is checked when it is
//! planned.

use powerstack_model::cpulist::{format_cpulist, parse_cpulist};

use crate::FreqError;
use crate::config::{ExclusivePool, PoolsFile, ProfileSpec};

/// What `set-profile` gives a pool: a profile defined in the file, by name, or the options of a
/// profile of the pool's own (named after the pool).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileRequest {
    /// A profile defined in the file.
    pub name: Option<String>,
    /// Minimum scaling frequency, kHz.
    pub min_khz: Option<u64>,
    /// Maximum scaling frequency, kHz.
    pub max_khz: Option<u64>,
    /// cpufreq governor.
    pub governor: Option<String>,
    /// Energy-performance preference.
    pub epp: Option<String>,
    /// C-states, `NAME=on` or `NAME=off` each.
    pub cstates: Vec<String>,
}

impl ProfileRequest {
    /// Whether any profile option is given.
    fn has_options(&self) -> bool {
        self.min_khz.is_some()
            || self.max_khz.is_some()
            || self.governor.is_some()
            || self.epp.is_some()
            || !self.cstates.is_empty()
    }

    /// The profile the options describe.
    fn spec(&self) -> Result<ProfileSpec, FreqError> {
        let mut spec = ProfileSpec {
            min_khz: self.min_khz,
            max_khz: self.max_khz,
            governor: self.governor.clone(),
            epp: self.epp.clone(),
            ..Default::default()
        };
        for c in &self.cstates {
            let refused = || invalid(format!("--cstate {c}: expected NAME=on or NAME=off"));
            let (n, v) = c.split_once('=').ok_or_else(refused)?;
            let on = match v {
                "on" | "1" | "true" | "enabled" => true,
                "off" | "0" | "false" | "disabled" => false,
                _ => return Err(refused()),
            };
            spec.cstates.insert(n.to_string(), on);
        }
        Ok(spec)
    }
}

fn invalid(msg: impl Into<String>) -> FreqError {
    FreqError::Invalid(msg.into())
}

fn cpus(list: &str) -> Result<Vec<u32>, FreqError> {
    parse_cpulist(list).map_err(|e| invalid(e.to_string()))
}

impl PoolsFile {
    /// The pool names, for people: `reserved, shared` and the exclusive pools.
    pub fn pool_names(&self) -> String {
        let mut v = vec!["reserved".to_string(), "shared".to_string()];
        v.extend(self.exclusive.iter().map(|p| p.name.clone()));
        v.join(", ")
    }

    /// Adds exclusive pool `name` with `cpus` (a CPU list) and `profile`, which must be defined.
    /// The CPUs leave the shared pool; moving them from elsewhere is refused by the move rules.
    pub fn create_pool(
        &mut self,
        name: &str,
        cpus: &str,
        profile: Option<&str>,
    ) -> Result<(), FreqError> {
        if self.exclusive(name).is_some() {
            return Err(invalid(format!("pool {name} already exists")));
        }
        if let Some(p) = profile
            && !self.profiles.contains_key(p)
        {
            return Err(invalid(format!(
                "profile {p:?} is not defined in the configuration in force; define it with `pools set-profile {name} --min-khz ...` or in a pools file"
            )));
        }
        self.exclusive.push(ExclusivePool {
            name: name.to_string(),
            cpus: cpus.to_string(),
            profile: profile.map(str::to_string),
        });
        Ok(())
    }

    /// Deletes exclusive pool `name` (its CPUs go back to the shared pool).
    pub fn delete_pool(&mut self, name: &str) -> Result<(), FreqError> {
        if matches!(name, "reserved" | "shared") {
            return Err(invalid(format!("the {name} pool cannot be deleted")));
        }
        let before = self.exclusive.len();
        self.exclusive.retain(|p| p.name != name);
        if self.exclusive.len() == before {
            return Err(invalid(format!("no pool {name}; pools: {}", self.pool_names())));
        }
        Ok(())
    }

    /// Moves `list` (a CPU list) to pool `to`: out of every pool that lists them, into `to`'s
    /// list (the shared pool has none: it is every CPU in no other pool).
    pub fn move_cpus(&mut self, list: &str, to: &str) -> Result<(), FreqError> {
        let moving = cpus(list)?;
        if to != "reserved" && to != "shared" && self.exclusive(to).is_none() {
            return Err(invalid(format!("no pool {to}; pools: {}", self.pool_names())));
        }
        let without = |list: &str| -> Result<String, FreqError> {
            let mut v = cpus(list)?;
            v.retain(|c| !moving.contains(c));
            Ok(format_cpulist(&v))
        };
        self.reserved.cpus = without(&self.reserved.cpus)?;
        for p in &mut self.exclusive {
            p.cpus = without(&p.cpus)?;
        }
        let with = |list: &str| -> Result<String, FreqError> {
            let mut v = cpus(list)?;
            v.extend(moving.iter().copied());
            Ok(format_cpulist(&v))
        };
        match to {
            "reserved" => self.reserved.cpus = with(&self.reserved.cpus)?,
            "shared" => {}
            name => {
                if let Some(p) = self.exclusive.iter_mut().find(|p| p.name == name) {
                    p.cpus = with(&p.cpus)?;
                }
            }
        }
        Ok(())
    }

    /// Gives `pool` a profile: one defined in the file, or one of its own from the options
    /// (named after the pool, replacing one of that name). The reserved pool is never tuned.
    pub fn set_profile(&mut self, pool: &str, request: &ProfileRequest) -> Result<(), FreqError> {
        let name = match (&request.name, request.has_options()) {
            (Some(_), true) => {
                return Err(invalid("give a profile name or profile options, not both"));
            }
            (Some(p), false) => {
                if !self.profiles.contains_key(p) {
                    return Err(invalid(format!(
                        "profile {p:?} is not defined in the configuration in force (profiles: {})",
                        self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                p.clone()
            }
            (None, true) => {
                self.profiles.insert(pool.to_string(), request.spec()?);
                pool.to_string()
            }
            (None, false) => {
                return Err(invalid(
                    "give a profile name, or options such as --min-khz, --max-khz, --governor, --epp, --cstate",
                ));
            }
        };
        match pool {
            "reserved" => {
                return Err(invalid("the reserved pool is never tuned: it cannot have a profile"));
            }
            "shared" => self.shared.profile = Some(name),
            pool => match self.exclusive.iter_mut().find(|p| p.name == pool) {
                Some(p) => p.profile = Some(name),
                None => {
                    return Err(invalid(format!("no pool {pool}; pools: {}", self.pool_names())));
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(min_khz: u64) -> ProfileRequest {
        ProfileRequest { min_khz: Some(min_khz), ..Default::default() }
    }

    #[test]
    fn pools_are_created_once_and_only_exclusive_ones_deleted() {
        let mut f = PoolsFile::default();
        f.create_pool("fast", "2-3", None).unwrap();
        let again = f.create_pool("fast", "4", None).unwrap_err().to_string();
        assert_eq!(again, "pool fast already exists");
        let undefined = f.create_pool("slow", "4", Some("eco")).unwrap_err().to_string();
        assert!(undefined.starts_with("profile \"eco\" is not defined"), "{undefined}");
        assert_eq!(
            f.delete_pool("shared").unwrap_err().to_string(),
            "the shared pool cannot be deleted"
        );
        f.delete_pool("fast").unwrap();
        let gone = f.delete_pool("fast").unwrap_err().to_string();
        assert_eq!(gone, "no pool fast; pools: reserved, shared");
    }

    #[test]
    fn moved_cpus_leave_every_list_and_join_the_target() {
        let mut f = PoolsFile::default();
        f.reserved.cpus = "0-1".into();
        f.create_pool("fast", "2-5", None).unwrap();
        f.move_cpus("1,4", "fast").unwrap();
        assert_eq!((f.reserved.cpus.as_str(), f.exclusive[0].cpus.as_str()), ("0", "1-5"));
        f.move_cpus("3", "shared").unwrap();
        assert_eq!(f.exclusive[0].cpus, "1-2,4-5");
        assert!(
            f.move_cpus("1", "nowhere").unwrap_err().to_string().starts_with("no pool nowhere")
        );
    }

    #[test]
    fn a_profile_is_a_name_or_options_never_both_and_never_for_reserved() {
        let mut f = PoolsFile::default();
        let both = ProfileRequest { name: Some("x".into()), ..options(1) };
        let e = f.set_profile("shared", &both).unwrap_err().to_string();
        assert_eq!(e, "give a profile name or profile options, not both");
        let e = f.set_profile("reserved", &options(1)).unwrap_err().to_string();
        assert_eq!(e, "the reserved pool is never tuned: it cannot have a profile");
        let bad = ProfileRequest { cstates: vec!["C6=maybe".into()], ..Default::default() };
        let e = f.set_profile("shared", &bad).unwrap_err().to_string();
        assert_eq!(e, "--cstate C6=maybe: expected NAME=on or NAME=off");
        f.set_profile("shared", &options(1_200_000)).unwrap();
        assert_eq!(f.shared.profile.as_deref(), Some("shared"));
        assert_eq!(f.profiles["shared"].min_khz, Some(1_200_000));
    }
}
