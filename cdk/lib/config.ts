/**
 * The controller's configuration as the Lambda reads it: JSON in `DORMANT_CONFIG`, the same shape as
 * the TOML file (docs/design.md, 'Configuration', `src/config/raw.rs` `RawConfig`). The Rust side rejects unknown keys
 * (`deny_unknown_fields`), so this mirrors its fields exactly; test/config.test.ts checks the mirror
 * against `dormant.example.toml`.
 */

export interface DormantAccount {
  readonly id: string;
  readonly role: string;
}

export interface DormantConfig {
  readonly table: string;
  readonly event_bus: string;
  readonly dry_run: boolean;
  readonly accounts: DormantAccount[];
  /** Member accounts swept at once. */
  readonly max_concurrent_accounts: number;
  /** Identities of one account worked on at once. */
  readonly max_concurrent_identities: number;
  /** Member accounts discovered with AWS Organizations `ListAccounts` (merged with `accounts`). */
  readonly organization: {
    readonly enabled: boolean;
    /** Filled in by the stack: the member role name. */
    readonly role_name: string;
    readonly exclude: string[];
    readonly include_own_account: boolean;
  };
  readonly inactivity: {
    readonly threshold_days: number;
    readonly key_threshold_days: number;
    /** Omitted: defaults to threshold_days on the Rust side. */
    readonly min_age_days?: number;
    /** Ask IAM Access Advisor before an access-cutting step; no answer, no step. */
    readonly confirm_with_access_advisor: boolean;
  };
  readonly ladder: {
    readonly notice_to_quarantine_days: number;
    readonly quarantine_to_keys_days: number;
    readonly to_delete_days: number;
    readonly delete: 'enabled' | 'approval' | 'never';
    readonly cooloff_days: number;
  };
  readonly exemptions: {
    readonly globs: string[];
    readonly require_until: boolean;
    readonly max_days: number;
    readonly accounts: string[];
  };
  readonly breaker: {
    readonly max_actions_per_run: number;
    readonly max_quarantine_fraction: number;
    readonly min_count: number;
  };
  readonly fallback: {
    readonly ssm_steps: string[];
    readonly automation_role: string;
  };
  readonly sources: {
    readonly config_rules: string[];
  };
  /** Every AWS call: a silent endpoint fails instead of hanging. */
  readonly timeouts: {
    readonly connect_secs: number;
    readonly read_secs: number;
    readonly operation_secs: number;
  };
  /** dormant's own findings in Security Hub and the workflow of the findings that nominated. */
  readonly security_hub: {
    readonly enabled: boolean;
    /** Empty: the Lambda's region. */
    readonly region: string;
  };
  /** Telling each identity's owner (docs/design.md, 'Owners and messages'). */
  readonly notify: {
    readonly enabled: boolean;
    readonly owner_tags: string[];
    /** Tag value or account id → recipient (`a@example.com`, `slack:#channel`, `sns:ARN`). */
    readonly routes: Record<string, string>;
    readonly account_fallback: Record<string, string>;
    readonly fallback: string;
    /** The security team's feed; the stack fills in its topic when left empty. */
    readonly feed: string;
    readonly email_from: string;
    readonly slack_webhooks: Record<string, string>;
    readonly slack_webhooks_secret: string;
    readonly templates: string;
    /** Failed attempts after which a message is dead-lettered (1-100). */
    readonly max_attempts: number;
  };
  /** Owners' answer links (docs/design.md, 'Answers'); the stack fills key_source when on. */
  readonly answers: {
    readonly base_url: string;
    readonly key_source: string;
    readonly previous_key_source: string;
    readonly slack_signing_secret_source: string;
    /** The answers role's name: protected by the controller (the stack fills it when on). */
    readonly role_name: string;
  };
}

type Section = Exclude<
  keyof DormantConfig,
  'table' | 'event_bus' | 'dry_run' | 'accounts' | 'max_concurrent_accounts' | 'max_concurrent_identities'
>;

/** What an operator may override from the stack props (`table`, `event_bus`, `accounts`,
 * `organization.role_name`, `answers.role_name` and `fallback.automation_role` are filled in by
 * the stack from the resources it creates). */
export type DormantConfigOverrides = {
  readonly dry_run?: boolean;
  readonly max_concurrent_accounts?: number;
  readonly max_concurrent_identities?: number;
} & { readonly [S in Exclude<Section, 'organization' | 'answers'>]?: Partial<DormantConfig[S]> } & {
  readonly organization?: Partial<Omit<DormantConfig['organization'], 'role_name'>>;
  readonly answers?: Partial<Omit<DormantConfig['answers'], 'role_name'>>;
};

/** The Rust parser's defaults (docs/design.md, 'Configuration'); test/config.test.ts checks them
 * against the binary's own (`dormant config --defaults --output json`). */
export const DEFAULT_CONFIG: DormantConfig = {
  table: 'dormant',
  event_bus: 'default',
  dry_run: false,
  accounts: [],
  max_concurrent_accounts: 8,
  max_concurrent_identities: 8,
  organization: { enabled: false, role_name: 'dormant-member', exclude: [], include_own_account: false },
  inactivity: { threshold_days: 90, key_threshold_days: 45, confirm_with_access_advisor: false },
  ladder: {
    notice_to_quarantine_days: 7,
    quarantine_to_keys_days: 7,
    to_delete_days: 16,
    delete: 'enabled',
    cooloff_days: 30,
  },
  exemptions: { globs: [], require_until: false, max_days: 365, accounts: [] },
  breaker: { max_actions_per_run: 25, max_quarantine_fraction: 0.1, min_count: 5 },
  fallback: { ssm_steps: [], automation_role: '' },
  sources: { config_rules: ['iam-user-unused-credentials-check', 'iam-role-last-used'] },
  timeouts: { connect_secs: 5, read_secs: 60, operation_secs: 120 },
  security_hub: { enabled: false, region: '' },
  notify: {
    enabled: false,
    owner_tags: ['dormant:owner', 'owner', 'Owner', 'team', 'contact'],
    routes: {},
    account_fallback: {},
    fallback: '',
    feed: '',
    email_from: '',
    slack_webhooks: {},
    slack_webhooks_secret: '',
    templates: '',
    max_attempts: 10,
  },
  answers: { base_url: '', key_source: '', previous_key_source: '', slack_signing_secret_source: '', role_name: '' },
};

/** Where the stack departs from the Rust defaults: a deployment reports to Security Hub. */
export const STACK_DEFAULTS = { security_hub: { enabled: true } };

/** Every key the Rust parser accepts, by section ('' = top level). */
export const CONFIG_KEYS: Record<string, string[]> = {
  '': ['table', 'event_bus', 'dry_run', 'accounts', 'max_concurrent_accounts', 'max_concurrent_identities', 'organization', 'inactivity', 'ladder', 'exemptions', 'breaker', 'fallback', 'sources', 'timeouts', 'security_hub', 'notify', 'answers'],
  organization: ['enabled', 'role_name', 'exclude', 'include_own_account'],
  inactivity: ['threshold_days', 'key_threshold_days', 'min_age_days', 'confirm_with_access_advisor'],
  ladder: ['notice_to_quarantine_days', 'quarantine_to_keys_days', 'to_delete_days', 'delete', 'cooloff_days'],
  exemptions: ['globs', 'require_until', 'max_days', 'accounts'],
  breaker: ['max_actions_per_run', 'max_quarantine_fraction', 'min_count'],
  fallback: ['ssm_steps', 'automation_role'],
  sources: ['config_rules'],
  timeouts: ['connect_secs', 'read_secs', 'operation_secs'],
  security_hub: ['enabled', 'region'],
  notify: [
    'enabled',
    'owner_tags',
    'routes',
    'account_fallback',
    'fallback',
    'feed',
    'email_from',
    'slack_webhooks',
    'slack_webhooks_secret',
    'templates',
    'max_attempts',
  ],
  answers: ['base_url', 'key_source', 'previous_key_source', 'slack_signing_secret_source', 'role_name'],
};

export function buildConfig(
  overrides: DormantConfigOverrides | undefined,
  fixed: Pick<DormantConfig, 'table' | 'event_bus' | 'accounts'> & {
    automationRoleArn: string;
    memberRoleName?: string;
    /** The answer links' signing key, when the stack creates one. */
    answersKeySource?: string;
    /** The answers role's name, when the stack has one. */
    answersRoleName?: string;
  },
): DormantConfig {
  const o = overrides ?? {};
  for (const key of Object.keys(o)) {
    if (!CONFIG_KEYS[''].includes(key) || ['table', 'event_bus', 'accounts'].includes(key)) {
      throw new Error(`config override '${key}' is not allowed (table, event_bus and accounts come from the stack)`);
    }
    const section = (o as Record<string, unknown>)[key];
    if (section !== null && typeof section === 'object') {
      for (const sub of Object.keys(section)) {
        if (!CONFIG_KEYS[key]?.includes(sub)) {
          throw new Error(`config override '${key}.${sub}' is not a dormant configuration key`);
        }
        if (key === 'organization' && sub === 'role_name') {
          throw new Error("config override 'organization.role_name' is not allowed (the stack's memberRoleName is used)");
        }
        if (key === 'answers' && sub === 'role_name') {
          throw new Error("config override 'answers.role_name' is not allowed (the stack's answers.roleName is used)");
        }
      }
    }
  }
  return {
    table: fixed.table,
    event_bus: fixed.event_bus,
    dry_run: o.dry_run ?? DEFAULT_CONFIG.dry_run,
    accounts: fixed.accounts,
    max_concurrent_accounts: o.max_concurrent_accounts ?? DEFAULT_CONFIG.max_concurrent_accounts,
    max_concurrent_identities: o.max_concurrent_identities ?? DEFAULT_CONFIG.max_concurrent_identities,
    organization: {
      ...DEFAULT_CONFIG.organization,
      ...o.organization,
      role_name: fixed.memberRoleName ?? DEFAULT_CONFIG.organization.role_name,
    },
    inactivity: { ...DEFAULT_CONFIG.inactivity, ...o.inactivity },
    ladder: { ...DEFAULT_CONFIG.ladder, ...o.ladder },
    exemptions: { ...DEFAULT_CONFIG.exemptions, ...o.exemptions },
    breaker: { ...DEFAULT_CONFIG.breaker, ...o.breaker },
    fallback: { ...DEFAULT_CONFIG.fallback, ...o.fallback, automation_role: fixed.automationRoleArn },
    sources: { ...DEFAULT_CONFIG.sources, ...o.sources },
    timeouts: { ...DEFAULT_CONFIG.timeouts, ...o.timeouts },
    security_hub: { ...DEFAULT_CONFIG.security_hub, ...STACK_DEFAULTS.security_hub, ...o.security_hub },
    notify: { ...DEFAULT_CONFIG.notify, ...o.notify },
    answers: {
      ...DEFAULT_CONFIG.answers,
      ...o.answers,
      ...(fixed.answersKeySource ? { key_source: fixed.answersKeySource } : {}),
      ...(fixed.answersRoleName ? { role_name: fixed.answersRoleName } : {}),
    },
  };
}
