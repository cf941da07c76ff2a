/**
 * A compact description language for QAPI types, enough to validate QMP
 * command arguments and command-line options the way QEMU does:
 *
 *   const BackupArgs = struct('BlockdevBackup', {
 *     device: str, target: str, sync: MirrorSyncMode, '*speed': int,
 *   });
 *
 * Member names starting with '*' are optional. Member order is the order
 * QEMU visits them, which decides which error is reported first.
 * Recursive types use `lazy(() => Type)`.
 */

/** Built-in scalar types, by their QAPI names. */
export type BuiltinName =
  | 'str' | 'bool' | 'number' | 'null' | 'any'
  | 'int' | 'int8' | 'int16' | 'int32' | 'int64'
  | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'size';

/** The TypeScript type a validated value of each built-in type has. */
interface BuiltinValues {
  str: string; bool: boolean; number: number; null: null; any: unknown;
  int: number; int8: number; int16: number; int32: number; int64: number;
  uint8: number; uint16: number; uint32: number; uint64: number; size: number;
}

export interface BuiltinType<N extends BuiltinName = BuiltinName> {
  readonly kind: 'builtin';
  readonly name: N;
}

export interface EnumType<V extends string = string> {
  readonly kind: 'enum';
  readonly name: string;
  readonly values: readonly V[];
}

export interface StructMember {
  readonly name: string;
  readonly optional: boolean;
  readonly type: QapiType;
}

/**
 * The composite types carry the TypeScript type of their validated values
 * in `valueType`, for inference only: it is never set at run time.
 */
interface Typed<T> {
  readonly valueType?: T;
}

export interface StructType<T = unknown> extends Typed<T> {
  readonly kind: 'struct';
  readonly name: string;
  readonly members: readonly StructMember[];
}

/**
 * A flat union: the base members (one of them, `discriminator`, an enum)
 * followed by the members of the branch the discriminator selects. A
 * discriminator value without a branch adds no members.
 */
export interface UnionType<T = unknown> extends Typed<T> {
  readonly kind: 'union';
  readonly name: string;
  readonly base: StructType;
  readonly discriminator: string;
  readonly branches: Readonly<Record<string, StructType>>;
}

export interface ListType<T = unknown> extends Typed<T> {
  readonly kind: 'list';
  readonly element: QapiType;
}

/** One of several types, chosen by the JSON type of the value (object, string, number, boolean, null, array). */
export interface AlternateType<T = unknown> extends Typed<T> {
  readonly kind: 'alternate';
  readonly name: string;
  readonly branches: readonly QapiType[];
}

/** A type resolved on first use, for recursive definitions. */
export interface LazyType<T = unknown> extends Typed<T> {
  readonly kind: 'lazy';
  readonly resolve: () => QapiType;
}

export type QapiType = BuiltinType | EnumType | StructType | UnionType | ListType | AlternateType | LazyType;

/** Object types: what may appear as command arguments or as the data of an event. */
export type ObjectType = StructType | UnionType;

/** Member table as written in QAPI: `{ name: type, '*optional': type }`. */
export type MemberTable = Readonly<Record<string, QapiType>>;

/**
 * The TypeScript type of values that pass validation against `T`:
 * `ValueOf<typeof BackupArgs>` is `{ device: string; speed?: number; ... }`.
 */
export type ValueOf<T> = T extends BuiltinType<infer N> ? BuiltinValues[N] : T extends EnumType<infer V> ? V : T extends Typed<infer V> ? V : unknown;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type RequiredKey<K> = K extends `*${string}` ? never : K;
type OptionalKey<K> = K extends `*${infer Name}` ? Name : never;

/** The value type of a member table. */
export type MembersValue<M> = Simplify<
  { [K in keyof M as RequiredKey<K & string>]: ValueOf<M[K]> } & { [K in keyof M as OptionalKey<K & string>]?: ValueOf<M[K]> }
>;

type PartValue<P> = P extends StructType<infer V> ? V : MembersValue<P>;
type DiscriminatorValue<B, D extends string> = D extends keyof PartValue<B> ? PartValue<B>[D] : string;
type UnionValue<B, D extends string, Branches> =
  | { [K in keyof Branches & string]: Simplify<Omit<PartValue<B>, D> & { [P in D]: K } & PartValue<Branches[K]>> }[keyof Branches & string]
  | Simplify<Omit<PartValue<B>, D> & { [P in D]: Exclude<DiscriminatorValue<B, D>, keyof Branches> }>;

const builtin = <N extends BuiltinName>(name: N): BuiltinType<N> => ({ kind: 'builtin', name });

export const str = builtin('str');
export const bool = builtin('bool');
export const number = builtin('number');
export const nullType = builtin('null');
export const any = builtin('any');
/** QAPI 'int' (int64). */
export const int = builtin('int');
export const int8 = builtin('int8');
export const int16 = builtin('int16');
export const int32 = builtin('int32');
export const int64 = builtin('int64');
export const uint8 = builtin('uint8');
export const uint16 = builtin('uint16');
export const uint32 = builtin('uint32');
export const uint64 = builtin('uint64');
/** A byte count; on the command line it takes suffixes (k, M, G, T, P, E). */
export const size = builtin('size');

/** An enumeration of string values. */
export function enumType<const V extends string>(name: string, values: readonly V[]): EnumType<V> {
  return { kind: 'enum', name, values };
}

function membersOf(table: MemberTable): StructMember[] {
  return Object.entries(table).map(([key, type]) =>
    key.startsWith('*') ? { name: key.slice(1), optional: true, type } : { name: key, optional: false, type },
  );
}

/** A struct; `base` members come first, as in QAPI. */
export function struct<M extends MemberTable, BaseValue = {}>(name: string, members: M, base?: StructType<BaseValue>): StructType<Simplify<BaseValue & MembersValue<M>>> {
  return { kind: 'struct', name, members: [...(base?.members ?? []), ...membersOf(members)] };
}

const isStruct = (value: StructType | MemberTable): value is StructType =>
  (value as StructType).kind === 'struct' && Array.isArray((value as StructType).members);

/** A flat union discriminated by the enum member `discriminator` of `base`. */
export function union<B extends StructType<any> | MemberTable, D extends string, Branches extends Readonly<Record<string, StructType<any> | MemberTable>>>(
  name: string,
  definition: { base: B; discriminator: D; branches: Branches },
): UnionType<UnionValue<B, D, Branches>> {
  const asStruct = (value: StructType | MemberTable, structName: string): StructType => (isStruct(value) ? value : struct(structName, value));
  const base = asStruct(definition.base, `${name}Base`);
  const discriminatorMember = base.members.find((member) => member.name === definition.discriminator);
  if (discriminatorMember === undefined || discriminatorMember.optional) {
    throw new Error(`union ${name}: discriminator '${definition.discriminator}' must be a required base member`);
  }
  const branches: Record<string, StructType> = {};
  for (const [value, branch] of Object.entries(definition.branches)) branches[value] = asStruct(branch, `${name}-${value}`);
  return { kind: 'union', name, base, discriminator: definition.discriminator, branches };
}

/** A list of `element`. */
export function list<E extends QapiType>(element: E): ListType<Array<ValueOf<E>>> {
  return { kind: 'list', element };
}

/** An alternate: at most one branch per JSON type. */
export function alternate<const Branches extends readonly QapiType[]>(name: string, branches: Branches): AlternateType<ValueOf<Branches[number]>> {
  return { kind: 'alternate', name, branches };
}

/**
 * A reference resolved when first needed (recursive types). TypeScript
 * needs an annotation to break the cycle, e.g. `lazy((): QapiType => Options)`.
 */
export function lazy<T extends QapiType>(resolve: () => T): LazyType<ValueOf<T>> {
  return { kind: 'lazy', resolve };
}

/** Follow lazy references to the real type. */
export function resolveType(type: QapiType): Exclude<QapiType, LazyType> {
  let current = type;
  while (current.kind === 'lazy') current = current.resolve();
  return current;
}

/** The empty struct: commands without arguments. */
export const noArguments = struct('NoArguments', {});
