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

export interface BuiltinType {
  readonly kind: 'builtin';
  readonly name: BuiltinName;
}

export interface EnumType {
  readonly kind: 'enum';
  readonly name: string;
  readonly values: readonly string[];
}

export interface StructMember {
  readonly name: string;
  readonly optional: boolean;
  readonly type: QapiType;
}

export interface StructType {
  readonly kind: 'struct';
  readonly name: string;
  readonly members: readonly StructMember[];
}

/**
 * A flat union: the base members (one of them, `discriminator`, an enum)
 * followed by the members of the branch the discriminator selects. A
 * discriminator value without a branch adds no members.
 */
export interface UnionType {
  readonly kind: 'union';
  readonly name: string;
  readonly base: StructType;
  readonly discriminator: string;
  readonly branches: Readonly<Record<string, StructType>>;
}

export interface ListType {
  readonly kind: 'list';
  readonly element: QapiType;
}

/** One of several types, chosen by the JSON type of the value (object, string, number, boolean, null, array). */
export interface AlternateType {
  readonly kind: 'alternate';
  readonly name: string;
  readonly branches: readonly QapiType[];
}

/** A type resolved on first use, for recursive definitions. */
export interface LazyType {
  readonly kind: 'lazy';
  readonly resolve: () => QapiType;
}

export type QapiType = BuiltinType | EnumType | StructType | UnionType | ListType | AlternateType | LazyType;

/** Object types: what may appear as command arguments or as the data of an event. */
export type ObjectType = StructType | UnionType;

/** Member table as written in QAPI: `{ name: type, '*optional': type }`. */
export type MemberTable = Readonly<Record<string, QapiType>>;

const builtin = (name: BuiltinName): BuiltinType => ({ kind: 'builtin', name });

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
export function enumType(name: string, values: readonly string[]): EnumType {
  return { kind: 'enum', name, values };
}

function membersOf(table: MemberTable): StructMember[] {
  return Object.entries(table).map(([key, type]) =>
    key.startsWith('*') ? { name: key.slice(1), optional: true, type } : { name: key, optional: false, type },
  );
}

/** A struct; `base` members come first, as in QAPI. */
export function struct(name: string, members: MemberTable, base?: StructType): StructType {
  return { kind: 'struct', name, members: [...(base?.members ?? []), ...membersOf(members)] };
}

/** A flat union discriminated by the enum member `discriminator` of `base`. */
export function union(
  name: string,
  definition: { base: StructType | MemberTable; discriminator: string; branches: Readonly<Record<string, StructType | MemberTable>> },
): UnionType {
  const asStruct = (value: StructType | MemberTable, structName: string): StructType =>
    (value as StructType).kind === 'struct' && Array.isArray((value as StructType).members)
      ? (value as StructType)
      : struct(structName, value as MemberTable);
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
export function list(element: QapiType): ListType {
  return { kind: 'list', element };
}

/** An alternate: at most one branch per JSON type. */
export function alternate(name: string, branches: readonly QapiType[]): AlternateType {
  return { kind: 'alternate', name, branches };
}

/** A reference resolved when first needed (recursive types). */
export function lazy(resolve: () => QapiType): LazyType {
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
